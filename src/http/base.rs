//! `GET /v2/`: API version check.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// 200 with an empty JSON object.
pub fn get() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}
