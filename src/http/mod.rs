//! The OCI Distribution HTTP API (axum). One module per resource; every
//! request goes through the single route parser in [`route`] and every
//! failure renders through [`error`].

pub mod access_log;
pub mod auth;
pub mod base;
pub mod blobs;
pub mod catalog;
pub mod error;
pub mod manifests;
pub mod metrics_layer;
pub mod referrers;
pub mod route;
pub mod tags;
pub mod uploads;

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use crate::metrics::Metrics;
use crate::registry::{ErrorCode, Registry, RegistryError};
use crate::storage::ByteStream;
use error::{ApiError, ApiResult};
use route::{Route, RouteError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Extra routes (e.g. `/disco/v1/...`) are merged by the server.
    pub base_url: Option<String>,
    /// The pull-through mirror, when `proxy` is configured.
    pub mirror: Option<crate::mirror::Mirror>,
}

/// The API router: every `/v2/...` path goes to [`dispatch`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics_layer::track,
        ))
        .with_state(state)
}

/// Routes a request by its parsed path and method.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let names = app.mirror.as_ref().map(|m| m.names());
    let route = match crate::mirror::http::route(names, &path, req.uri().query()) {
        Ok(r) => r,
        Err(RouteError::Invalid(e)) => return with_api_header(ApiError(e).into_response()),
        Err(RouteError::NotFound) => {
            return with_api_header(
                ApiError(
                    RegistryError::new(ErrorCode::NameUnknown, "no such API endpoint")
                        .with_status(404),
                )
                .into_response(),
            );
        }
    };
    let req = match &app.mirror {
        Some(m) => match m.handle(&app, &route, req).await {
            Ok(result) => return with_api_header(result.unwrap_or_else(|e| e.into_response())),
            Err(req) => req,
        },
        None => req,
    };
    let method = req.method().clone();
    let result: ApiResult = match (&route, &method) {
        (Route::Base, &Method::GET | &Method::HEAD) => Ok(base::get()),
        (Route::Catalog, &Method::GET) => catalog::get(&app, req).await,
        (Route::Tags(name), &Method::GET) => tags::get(&app, name, req).await,
        (Route::Manifest(name, r), &Method::GET) => manifests::get(&app, name, r, req, true).await,
        (Route::Manifest(name, r), &Method::HEAD) => {
            manifests::get(&app, name, r, req, false).await
        }
        (Route::Manifest(name, r), &Method::PUT) => manifests::put(&app, name, r, req).await,
        (Route::Manifest(name, r), &Method::DELETE) => manifests::delete(&app, name, r).await,
        (Route::Blob(name, d), &Method::GET) => blobs::get(&app, name, d, req, true).await,
        (Route::Blob(name, d), &Method::HEAD) => blobs::get(&app, name, d, req, false).await,
        (Route::Blob(name, d), &Method::DELETE) => blobs::delete(&app, name, d).await,
        (Route::UploadStart(name), &Method::POST) => uploads::post(&app, name, req).await,
        (Route::Upload(name, id), &Method::GET) => uploads::status(&app, name, id).await,
        (Route::Upload(name, id), &Method::PATCH) => uploads::patch(&app, name, id, req).await,
        (Route::Upload(name, id), &Method::PUT) => uploads::put(&app, name, id, req).await,
        (Route::Upload(name, id), &Method::DELETE) => uploads::delete(&app, name, id).await,
        (Route::Referrers(name, d), &Method::GET) => referrers::get(&app, name, d, req).await,
        _ => Err(ApiError(RegistryError::unsupported(format!(
            "method {method} is not supported on {}",
            route.label()
        )))),
    };
    with_api_header(result.unwrap_or_else(|e| e.into_response()))
}

fn with_api_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// The request body as a byte stream (chunked or not; no size limit).
pub(crate) fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

/// Reads a request body up to `limit` bytes (413 beyond).
pub(crate) async fn read_body_limited(body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_big {
                Err(ApiError(
                    RegistryError::new(
                        ErrorCode::SizeInvalid,
                        format!("request body exceeds {limit} bytes"),
                    )
                    .with_status(413),
                ))
            } else {
                Err(ApiError(RegistryError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("reading the request body failed: {e}"),
                )))
            }
        }
    }
}

/// A header as a string, if present and valid.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An empty response with a status and headers.
pub(crate) fn empty(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        resp = resp.header(*k, v);
    }
    resp.header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Builds a location path below `/v2/`, absolute if `http.host` is set.
pub(crate) fn location(app: &AppState, path: &str) -> String {
    match &app.base_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path.to_string(),
    }
}
