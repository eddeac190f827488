//! Renders [`RegistryError`] as the OCI error JSON:
//! `{"errors":[{"code","message","detail"}]}` with the error's status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::RegistryError;

/// Newtype so the HTTP layer owns the rendering.
#[derive(Debug)]
pub struct ApiError(pub RegistryError);

impl ApiError {
    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError(e)
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = e.code.as_str(), status = e.status, "{}", e.message);
        } else {
            tracing::debug!(code = e.code.as_str(), status = e.status, "{}", e.message);
        }
        let mut item = json!({ "code": e.code.as_str(), "message": e.message });
        if let Some(detail) = e.detail {
            item["detail"] = detail;
        }
        let body = serde_json::to_vec(&json!({ "errors": [item] })).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Result type of handlers.
pub type ApiResult<T = Response> = Result<T, ApiError>;
