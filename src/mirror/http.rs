//! The HTTP side: the one route mapping (used by the access-control
//! layer and the handlers) and the handling of mirrored names.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::blobs::BlobFetch;
use super::manifests::Freshness;
use super::{Mirror, NS_PARAM, NameMap, Target};
use crate::http::error::{ApiError, ApiResult};
use crate::http::route::{self, Route, RouteError};
use crate::http::{AppState, blobs, manifests};
use crate::registry::manifests::Reference;
use crate::registry::{Digest, RegistryError, RepoName};

/// `Warning` sent with a tag the upstream could not confirm.
pub const STALE_WARNING: &str = "110 - \"Response is Stale\"";

/// Parses a request path into its route, with the repository name mapped
/// to the local name a mirror stores it under (`?ns=docker.io` →
/// `docker.io/<name>`). Access control authorises, and handlers serve,
/// exactly this route.
pub fn route(
    names: Option<&NameMap>,
    path: &str,
    query: Option<&str>,
) -> Result<Route, RouteError> {
    let r = route::parse(path)?;
    let Some(names) = names else {
        return Ok(r);
    };
    let pairs = route::query_pairs(query);
    let Some(ns) = route::query_get(&pairs, NS_PARAM) else {
        return Ok(r);
    };
    let map = |n: &RepoName| names.local_name(n, Some(ns)).map_err(RouteError::Invalid);
    Ok(match r {
        Route::Tags(n) => Route::Tags(map(&n)?),
        Route::Manifest(n, x) => Route::Manifest(map(&n)?, x),
        Route::Blob(n, x) => Route::Blob(map(&n)?, x),
        Route::UploadStart(n) => Route::UploadStart(map(&n)?),
        Route::Upload(n, x) => Route::Upload(map(&n)?, x),
        Route::Referrers(n, x) => Route::Referrers(map(&n)?, x),
        other => other,
    })
}

fn name_of(r: &Route) -> Option<&RepoName> {
    match r {
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => Some(n),
        Route::Base | Route::Catalog => None,
    }
}

impl Mirror {
    /// Serves `route` if it names a mirrored repository; gives the request
    /// back otherwise.
    pub async fn handle(
        &self,
        app: &AppState,
        r: &Route,
        req: Request,
    ) -> Result<ApiResult, Request> {
        let Some(t) = name_of(r).and_then(|n| self.target(n)) else {
            return Err(req);
        };
        let method = req.method().clone();
        Ok(match (r, &method) {
            (Route::Manifest(n, reference), &Method::GET | &Method::HEAD) => {
                self.manifest(app, &t, n, reference, req, method == Method::GET)
                    .await
            }
            (Route::Blob(n, d), &Method::GET | &Method::HEAD) => {
                self.blob(app, &t, n, d, req, method == Method::GET).await
            }
            (Route::Tags(_) | Route::Referrers(..), &Method::GET) => return Err(req),
            (Route::Upload(_, _), &Method::GET) => return Err(req),
            (_, m) => Err(ApiError(
                RegistryError::unsupported(format!(
                    "repository {} mirrors {} ({}): it is pull-only; {m} is refused",
                    name_of(r).map(RepoName::as_str).unwrap_or(""),
                    self.upstream(&t).name,
                    t.remote
                ))
                .with_detail(serde_json::json!({
                    "name": name_of(r).map(RepoName::as_str),
                    "upstream": self.upstream(&t).name,
                })),
            )),
        })
    }

    async fn manifest(
        &self,
        app: &AppState,
        t: &Target,
        name: &RepoName,
        reference: &str,
        req: Request,
        with_body: bool,
    ) -> ApiResult {
        let parsed = Reference::parse(reference)?
            .ok_or_else(|| ApiError(RegistryError::manifest_unknown(reference)))?;
        let fresh = self.prepare_manifest(t, name, &parsed).await?;
        let mut resp = manifests::get(app, name, reference, req, with_body).await?;
        if fresh == Freshness::Stale {
            resp.headers_mut()
                .insert(header::WARNING, HeaderValue::from_static(STALE_WARNING));
        }
        Ok(resp)
    }

    async fn blob(
        &self,
        app: &AppState,
        t: &Target,
        name: &RepoName,
        digest: &str,
        req: Request,
        with_body: bool,
    ) -> ApiResult {
        let d: Digest = digest.parse().map_err(ApiError)?;
        let registry = &app.registry;
        if registry.is_linked(name, &d).await? {
            return blobs::get(app, name, digest, req, with_body).await;
        }
        if !with_body {
            let size = self
                .upstream(t)
                .head_blob(&t.remote, digest)
                .await
                .map_err(|e| ApiError(e.response()))?
                .ok_or_else(|| ApiError(RegistryError::blob_unknown(&d)))?;
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size)
                .header("Docker-Content-Digest", d.to_string())
                .body(Body::empty())
                .map_err(|e| ApiError(RegistryError::internal(e.to_string())));
        }
        match self
            .fetch_blob(t, name, &d, true)
            .await
            .map_err(|e| ApiError(e.response()))?
        {
            None => Err(ApiError(RegistryError::blob_unknown(&d))),
            Some(BlobFetch::Stored) => blobs::get(app, name, digest, req, with_body).await,
            Some(BlobFetch::Streaming(len, s)) => {
                let mut b = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header("Docker-Content-Digest", d.to_string());
                if let Some(l) = len {
                    b = b.header(header::CONTENT_LENGTH, l);
                }
                b.body(Body::from_stream(s))
                    .map_err(|e| ApiError(RegistryError::internal(e.to_string())))
            }
        }
    }
}
