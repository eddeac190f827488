//! `GET /v2/<name>/tags/list?n=&last=`.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::route::{query_get, query_pairs};
use super::{AppState, location};
use crate::registry::tags::paginate;
use crate::registry::{ErrorCode, RegistryError, RepoName};

/// Parses the `n` and `last` pagination parameters.
pub(crate) fn page_params(req: &Request) -> ApiResult<(Option<usize>, Option<String>)> {
    let q = query_pairs(req.uri().query());
    let n = match query_get(&q, "n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError(RegistryError::new(
                ErrorCode::PaginationNumberInvalid,
                format!("invalid n={v:?}"),
            ))
        })?),
    };
    Ok((n, query_get(&q, "last").map(str::to_string)))
}

/// A JSON response with an optional `Link: <...>; rel="next"` header.
pub(crate) fn paged_json(
    app: &AppState,
    path: &str,
    body: serde_json::Value,
    n: Option<usize>,
    next_after: Option<&str>,
) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let (Some(n), Some(last)) = (n, next_after) {
        let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
        let link = format!("<{}?n={n}&last={last}>; rel=\"next\"", location(app, path));
        if let Ok(v) = link.parse() {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// Lists tags, sorted, paginated.
pub async fn get(app: &AppState, name: &RepoName, req: Request) -> ApiResult {
    let (n, last) = page_params(&req)?;
    let all = app.registry.list_tags(name).await?;
    let (page, more) = paginate(&all, n, last.as_deref());
    let next = if more {
        page.last().map(String::as_str)
    } else {
        None
    };
    let body = json!({ "name": name.as_str(), "tags": page });
    Ok(paged_json(
        app,
        &format!("/v2/{name}/tags/list"),
        body,
        n,
        next,
    ))
}
