//! One log line per request (`log.accesslog.disabled` turns it off) and
//! the configured extra response headers (`http.headers`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Static headers added to every response.
pub type ExtraHeaders = Arc<Vec<(HeaderName, HeaderValue)>>;

/// Logs method, path, status and duration at `info`.
pub async fn log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let user = resp
        .extensions()
        .get::<super::auth::AuthUser>()
        .map(|u| u.0.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "disco::access",
        %method,
        path,
        user,
        status = resp.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

/// Adds the configured headers.
pub async fn headers(State(extra): State<ExtraHeaders>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    for (k, v) in extra.iter() {
        resp.headers_mut().append(k.clone(), v.clone());
    }
    resp
}
