//! The single route parser for `/v2/...` URLs with nested repository names.
//!
//! Paths are matched from the right, on the raw (still percent-encoded)
//! path, so a name can never be decoded into `..` or a separator: anything
//! outside the name grammar is `NAME_INVALID`.

use crate::registry::{RegistryError, RepoName};

/// A parsed API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, String),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, String),
}

impl Route {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::UploadStart(_) | Route::Upload(..) => "upload",
            Route::Referrers(..) => "referrers",
        }
    }
}

/// Why a path is not a route.
#[derive(Debug)]
pub enum RouteError {
    /// Not an API path at all (404 with no OCI code).
    NotFound,
    /// An API path with an invalid repository name.
    Invalid(RegistryError),
}

fn name(segs: &[&str]) -> Result<RepoName, RouteError> {
    if segs.is_empty() {
        return Err(RouteError::NotFound);
    }
    RepoName::parse(&segs.join("/")).map_err(RouteError::Invalid)
}

/// Parses the path of a request.
pub fn parse(path: &str) -> Result<Route, RouteError> {
    if path == "/v2" || path == "/v2/" {
        return Ok(Route::Base);
    }
    let rest = path.strip_prefix("/v2/").ok_or(RouteError::NotFound)?;
    if rest == "_catalog" || rest == "_catalog/" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let at = |i: usize| -> &str { if i <= n && i > 0 { segs[n - i] } else { "" } };
    if n >= 3 && at(2) == "tags" && at(1) == "list" {
        return Ok(Route::Tags(name(&segs[..n - 2])?));
    }
    if n >= 4 && at(3) == "blobs" && at(2) == "uploads" {
        let repo = name(&segs[..n - 3])?;
        return Ok(if at(1).is_empty() {
            Route::UploadStart(repo)
        } else {
            Route::Upload(repo, at(1).to_string())
        });
    }
    if n >= 3 && at(2) == "blobs" && at(1) == "uploads" {
        return Ok(Route::UploadStart(name(&segs[..n - 2])?));
    }
    if n >= 3 && !at(1).is_empty() {
        let kind = at(2);
        let last = at(1).to_string();
        match kind {
            "manifests" => return Ok(Route::Manifest(name(&segs[..n - 2])?, last)),
            "blobs" => return Ok(Route::Blob(name(&segs[..n - 2])?, last)),
            "referrers" => return Ok(Route::Referrers(name(&segs[..n - 2])?, last)),
            _ => {}
        }
    }
    Err(RouteError::NotFound)
}

/// Decoded query parameters, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/").unwrap(), Route::Base);
        assert_eq!(parse("/v2").unwrap(), Route::Base);
        assert_eq!(parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            parse("/v2/a/b/tags/list").unwrap(),
            Route::Tags(repo("a/b"))
        );
        assert_eq!(
            parse("/v2/a/manifests/latest").unwrap(),
            Route::Manifest(repo("a"), "latest".into())
        );
        assert_eq!(
            parse("/v2/x/blobs/y/manifests/sha256:ab").unwrap(),
            Route::Manifest(repo("x/blobs/y"), "sha256:ab".into())
        );
        assert_eq!(
            parse("/v2/a/b/c/blobs/sha256:00").unwrap(),
            Route::Blob(repo("a/b/c"), "sha256:00".into())
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/").unwrap(),
            Route::UploadStart(repo("a"))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads").unwrap(),
            Route::UploadStart(repo("a"))
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/u-1").unwrap(),
            Route::Upload(repo("a"), "u-1".into())
        );
        assert_eq!(
            parse("/v2/a/referrers/sha256:00").unwrap(),
            Route::Referrers(repo("a"), "sha256:00".into())
        );
        // The repository may itself be named like a route keyword.
        assert_eq!(
            parse("/v2/tags/tags/list").unwrap(),
            Route::Tags(repo("tags"))
        );
    }

    #[test]
    fn hostile() {
        for p in [
            "/v2/../manifests/x",
            "/v2/%2e%2e/manifests/x",
            "/v2/a%2fb/blobs/x",
            "/v2/A/tags/list",
            "/v2/a\\b/tags/list",
            "/v2/a//b/tags/list",
        ] {
            assert!(matches!(parse(p), Err(RouteError::Invalid(_))), "{p}");
        }
        for p in [
            "/",
            "/v1/x",
            "/v2/manifests/x",
            "/v2/a/unknown/x",
            "/v2/tags/list",
        ] {
            assert!(matches!(parse(p), Err(RouteError::NotFound)), "{p}");
        }
    }
}
