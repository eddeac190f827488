//! Administrative endpoint of the embedded node on the main HTTP app:
//!
//! - `POST /disco/v1/gc` → runs a garbage collection now (one at a time;
//!   a second request waits for the running one) and answers
//!   `{"marked","removed","freedBytes","durationMs"}`. `disco gc` calls it
//!   when a disco is running on the data directory.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::{EmbeddedIpfs, GcStats};

/// The `/disco/v1/gc` route over `node`.
pub fn routes(node: EmbeddedIpfs) -> Router {
    Router::new()
        .route("/disco/v1/gc", post(gc))
        .with_state(node)
}

/// The JSON form of a collection's statistics.
pub fn stats_json(s: &GcStats) -> serde_json::Value {
    json!({
        "marked": s.marked,
        "removed": s.removed,
        "freedBytes": s.freed_bytes,
        "durationMs": s.duration.as_millis() as u64,
    })
}

async fn gc(State(node): State<EmbeddedIpfs>) -> Response {
    match node.gc().await {
        Ok(stats) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            stats_json(&stats).to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "garbage collection failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                json!({ "error": format!("garbage collection failed: {e}") }).to_string(),
            )
                .into_response()
        }
    }
}
