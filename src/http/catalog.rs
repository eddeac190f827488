//! `GET /v2/_catalog?n=&last=`.

use axum::extract::Request;
use serde_json::json;

use super::AppState;
use super::error::ApiResult;
use super::tags::{page_params, paged_json};
use crate::registry::tags::paginate;

/// Lists repositories, sorted, paginated.
pub async fn get(app: &AppState, req: Request) -> ApiResult {
    let (n, last) = page_params(&req)?;
    let mut all = app.registry.list_repositories().await?;
    // With access control, only what the caller may pull is listed.
    if let Some(a) = req.extensions().get::<super::auth::Authorized>() {
        all = a.auth.visible(&a.caller, all).await;
    }
    let (page, more) = paginate(&all, n, last.as_deref());
    let next = if more {
        page.last().map(String::as_str)
    } else {
        None
    };
    Ok(paged_json(
        app,
        "/v2/_catalog",
        json!({ "repositories": page }),
        n,
        next,
    ))
}
