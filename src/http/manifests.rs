//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::route::query_pairs;
use super::{AppState, empty, header_str, location, read_body_limited};
use crate::registry::manifest::accepts;
use crate::registry::manifests::Reference;
use crate::registry::{RegistryError, RepoName};

fn reference(r: &str) -> ApiResult<Reference> {
    Reference::parse(r)?.ok_or_else(|| ApiError(RegistryError::manifest_unknown(r)))
}

/// `GET` (with body) or `HEAD`.
pub async fn get(
    app: &AppState,
    name: &RepoName,
    r: &str,
    req: Request,
    with_body: bool,
) -> ApiResult {
    let reference = reference(r)?;
    let m = app.registry.get_manifest(name, &reference).await?;
    let accept: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !accepts(&accept, &m.media_type) {
        return Err(ApiError(
            RegistryError::manifest_unknown(r)
                .with_detail(serde_json::json!({ "mediaType": m.media_type, "accept": accept })),
        )
        .with_message(format!(
            "manifest found with media type {}, which the Accept header does not allow",
            m.media_type
        )));
    }
    let etag = format!("\"{}\"", m.digest);
    if super::blobs::if_none_match(req.headers(), &etag) {
        return Ok(super::blobs::not_modified(&etag, &m.digest.to_string()));
    }
    let body = if with_body {
        Body::from(m.bytes.clone())
    } else {
        Body::empty()
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, m.media_type.as_str())
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header("Docker-Content-Digest", m.digest.to_string())
        .header(header::ETAG, etag)
        .body(body)
        .map_err(|e| ApiError(RegistryError::internal(e.to_string())))
}

/// `PUT`: stores a manifest; `?tag=` parameters add tags.
pub async fn put(app: &AppState, name: &RepoName, r: &str, req: Request) -> ApiResult {
    app.registry.check_push(name)?;
    let reference = Reference::parse(r)?.ok_or_else(|| {
        ApiError(RegistryError::manifest_invalid(format!(
            "invalid tag {r:?}"
        )))
    })?;
    let tags: Vec<String> = query_pairs(req.uri().query())
        .into_iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v)
        .collect();
    let content_type = header_str(req.headers(), "content-type").map(str::to_string);
    let limit = app.registry.options().max_manifest_size;
    let body = read_body_limited(req.into_body(), limit)
        .await
        .map_err(|e| {
            if e.0.status == 413 {
                ApiError(
                    RegistryError::manifest_invalid(format!("manifest exceeds {limit} bytes"))
                        .with_status(413),
                )
            } else {
                e
            }
        })?;
    let pushed = app
        .registry
        .put_manifest(name, &reference, content_type.as_deref(), body, &tags)
        .await?;
    let mut headers = vec![
        (
            "Location",
            location(app, &format!("/v2/{name}/manifests/{}", pushed.digest)),
        ),
        ("Docker-Content-Digest", pushed.digest.to_string()),
    ];
    if let Some(s) = &pushed.subject {
        headers.push(("OCI-Subject", s.to_string()));
    }
    let mut resp = empty(StatusCode::CREATED, &headers);
    for (k, v) in pushed.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::try_from(k),
            header::HeaderValue::try_from(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// `DELETE`: by digest removes the manifest (and its tags), by tag only the
/// tag.
pub async fn delete(app: &AppState, name: &RepoName, r: &str) -> ApiResult {
    let reference = reference(r)?;
    app.registry.delete_manifest(name, &reference).await?;
    Ok(empty(StatusCode::ACCEPTED, &[]))
}
