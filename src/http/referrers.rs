//! `GET /v2/<name>/referrers/<digest>?artifactType=`: always an OCI index.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use super::error::ApiResult;
use super::route::{query_get, query_pairs};
use crate::registry::manifest::OCI_INDEX;
use crate::registry::{Digest, RepoName};

/// The referrers of a subject as an image index.
pub async fn get(app: &AppState, name: &RepoName, subject: &str, req: Request) -> ApiResult {
    let subject: Digest = subject.parse()?;
    let q = query_pairs(req.uri().query());
    let filter = query_get(&q, "artifactType").filter(|s| !s.is_empty());
    let manifests = app.registry.referrers(name, &subject, filter).await?;
    let body =
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }).to_string();
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, OCI_INDEX)], body).into_response();
    if filter.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
