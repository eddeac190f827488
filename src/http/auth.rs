//! The one access-control layer: every request on the main port is
//! classified by what it needs (Distribution's access records, from the
//! single route parser), its caller identified and authorised, before any
//! handler runs. Refusals are OCI error JSON: 401 `UNAUTHORIZED` with a
//! `WWW-Authenticate` challenge, or 403 `DENIED`.
//!
//! | request | needs |
//! |---|---|
//! | `GET /v2/`, unknown paths | a signed-in caller |
//! | `GET /v2/_catalog` | `registry:catalog:*`; the list is filtered to what the caller may pull |
//! | tags, manifest/blob `GET`/`HEAD`, referrers, upload status | `repository:<name>:pull` |
//! | manifest `PUT`, upload `POST`/`PATCH`/`PUT`/`DELETE` | `pull` and `push` |
//! | manifest and blob `DELETE` | `delete` |
//! | `GET /disco/v1/images/<digest>` | `pull` on the digest repository |
//! | other `/disco/v1/...` (node, peers, gc) | `registry:admin:*` |
//! | `GET /routing/v1/providers/<cid>` | `repository:<cid>:pull` |
//! | `GET /routing/v1/peers/<id>` | a signed-in caller |
//! | web pages (`crate::web::routes`) | see there: pages a signed-in caller, `/repo` and `/image` pull, `/node` admin, sign-in and assets nothing |
//!
//! On web pages only, a signed-in session cookie (`crate::web::session`)
//! identifies the caller when no `Authorization` header is sent; a refused
//! page without a caller redirects to `/login`. `/v2/` and the other APIs
//! never accept the cookie.
//!
//! With a mirror (`proxy`), a `?ns=<registry>` request is authorised on the
//! local name it is served as (`<registry>/<name>`, see
//! [`crate::mirror::http::route`]), never on the raw path name.
//!
//! A cross-repository mount from a repository the caller may not pull is
//! turned into a plain upload (the spec allows a registry to decline a
//! mount); so is a mount without `from`, which would otherwise find a blob
//! in any repository by its digest alone.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::route::{self, Route};
use crate::auth::{Access, Auth, Caller, Denial, access};
use crate::registry::{ErrorCode, RegistryError};
use crate::web::routes::{self as web_routes, WebNeed};
use crate::web::session::Sessions;

/// State of the layer.
#[derive(Clone)]
pub struct AuthLayer {
    /// The access controller.
    pub auth: Arc<Auth>,
    /// The main port serves TLS (the default scheme of auto-redirect
    /// realms).
    pub tls: bool,
    /// The mirror's name mapping: a `?ns=` request is authorised on the
    /// local name it is served as.
    pub mirror: Option<crate::mirror::NameMap>,
    /// Web page sessions (when the web page is on).
    pub sessions: Option<Arc<Sessions>>,
}

/// Put in request extensions for handlers that filter lists (the catalog).
#[derive(Clone)]
pub struct Authorized {
    /// The controller.
    pub auth: Arc<Auth>,
    /// The caller.
    pub caller: Caller,
}

/// The caller's name, put in response extensions for the access log.
#[derive(Clone, Debug)]
pub struct AuthUser(pub String);

/// What a request needs, and the source repository of a mount.
struct Needs {
    access: Vec<Access>,
    mount_from: Option<String>,
    anonymous_mount: bool,
    /// A web page (the session cookie counts).
    web: bool,
    /// Nothing needed, not even a caller (sign-in, assets).
    public: bool,
}

fn needs(method: &Method, uri: &Uri, mirror: Option<&crate::mirror::NameMap>) -> Needs {
    let path = uri.path();
    let mut n = Needs {
        access: Vec::new(),
        mount_from: None,
        anonymous_mount: false,
        web: false,
        public: false,
    };
    if let Some(w) = web_routes::classify(path, uri.query()) {
        n.web = true;
        match w {
            WebNeed::Public => n.public = true,
            WebNeed::SignedIn => {}
            WebNeed::Pull(name) => n.access = vec![Access::repository(&name, "pull")],
            WebNeed::Admin => n.access = vec![Access::admin()],
        }
        return n;
    }
    if let Some(rest) = path.strip_prefix("/routing/v1/") {
        // Who provides a CID is information about that content: the same
        // right as pulling it under its CID name. Peer addresses are no
        // content: any signed-in caller.
        if let Some(cid) = rest.strip_prefix("providers/") {
            n.access = vec![Access::repository(cid, "pull")];
        }
        return n;
    }
    if let Some(rest) = path.strip_prefix("/disco/v1/") {
        n.access = match rest.strip_prefix("images/") {
            Some(d) => {
                let hex = d.rsplit(':').next().unwrap_or(d);
                vec![Access::repository(hex, "pull")]
            }
            None => vec![Access::admin()],
        };
        return n;
    }
    let Ok(r) = crate::mirror::http::route(mirror, path, uri.query()) else {
        return n;
    };
    let repo = |name: &crate::registry::RepoName, actions: &[&str]| -> Vec<Access> {
        actions
            .iter()
            .map(|a| Access::repository(name.as_str(), a))
            .collect()
    };
    let m = method.clone();
    n.access = match (&r, m) {
        (Route::Base, _) => Vec::new(),
        (Route::Catalog, _) => vec![Access::catalog()],
        (Route::Tags(name) | Route::Referrers(name, _), _) => repo(name, &["pull"]),
        (Route::Manifest(name, _) | Route::Blob(name, _), Method::DELETE) => {
            repo(name, &["delete"])
        }
        (Route::Manifest(name, _), Method::PUT) => repo(name, &["pull", "push"]),
        (Route::Manifest(name, _) | Route::Blob(name, _), _) => repo(name, &["pull"]),
        (Route::Upload(name, _), Method::GET | Method::HEAD) => repo(name, &["pull"]),
        (Route::UploadStart(name), _) => {
            let q = route::query_pairs(uri.query());
            if route::query_get(&q, "mount").is_some() {
                match route::query_get(&q, "from") {
                    Some(from) => n.mount_from = Some(from.to_string()),
                    None => n.anonymous_mount = true,
                }
            }
            repo(name, &["pull", "push"])
        }
        (Route::Upload(name, _), _) => repo(name, &["pull", "push"]),
    };
    n
}

/// The URI without the `mount` and `from` query parameters.
fn without_mount(uri: &Uri) -> Uri {
    let kept: Vec<(String, String)> = route::query_pairs(uri.query())
        .into_iter()
        .filter(|(k, _)| k != "mount" && k != "from")
        .collect();
    let mut s = uri.path().to_string();
    if !kept.is_empty() {
        s.push('?');
        s.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish(),
        );
    }
    s.parse().unwrap_or_else(|_| uri.clone())
}

/// The layer: authenticate, authorise, then run the handler.
pub async fn check(State(layer): State<AuthLayer>, mut req: Request, next: Next) -> Response {
    let auth = &layer.auth;
    let needs = needs(req.method(), req.uri(), layer.mirror.as_ref());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let session = match (&layer.sessions, needs.web, &authorization) {
        (Some(s), true, None) => crate::web::login::session_user(s, auth, req.headers()),
        _ => None,
    };
    let caller = match (session, auth.authenticate(authorization.as_deref()).await) {
        (Some(user), _) => Caller::User(user),
        (None, Ok(c)) => c,
        (None, Err(_)) if needs.public => Caller::Anonymous,
        (None, Err(d)) => return refuse(&layer, &req, &needs, d),
    };
    if needs.public {
        return next.run(req).await;
    }
    if let Err(d) = auth.authorize(&caller, &needs.access).await {
        tracing::debug!(
            caller = caller.name(),
            path = req.uri().path(),
            "access denied"
        );
        return refuse(&layer, &req, &needs, d);
    }
    let drop_mount = needs.anonymous_mount
        || match &needs.mount_from {
            Some(from) => auth
                .authorize(&caller, &[Access::repository(from, "pull")])
                .await
                .is_err(),
            None => false,
        };
    if drop_mount {
        *req.uri_mut() = without_mount(req.uri());
    }
    let name = caller.name().to_string();
    req.extensions_mut().insert(Authorized {
        auth: auth.clone(),
        caller,
    });
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(AuthUser(name));
    resp
}

fn refuse(layer: &AuthLayer, req: &Request, needs: &Needs, denial: Denial) -> Response {
    if needs.web {
        return refuse_page(req, denial);
    }
    let need = &needs.access[..];
    let mut resp = match denial {
        Denial::Challenge { error } => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()));
            let proto = req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(if layer.tls { "https" } else { "http" });
            let challenge = layer.auth.challenge(host, Some(proto), need, error);
            let mut resp = ApiError(
                RegistryError::new(ErrorCode::Unauthorized, "authentication required")
                    .with_detail(access::detail(need)),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp
        }
        Denial::Forbidden => ApiError(
            RegistryError::new(
                ErrorCode::Denied,
                "requested access to the resource is denied",
            )
            .with_detail(access::detail(need)),
        )
        .into_response(),
    };
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

/// A refused web page: to the sign-in form without a caller, else 403.
fn refuse_page(req: &Request, denial: Denial) -> Response {
    let mut resp = match denial {
        Denial::Challenge { .. } => {
            let here = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let to = format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
            );
            crate::web::login::redirect(&to, None)
        }
        Denial::Forbidden => crate::web::PageError::new(
            axum::http::StatusCode::FORBIDDEN,
            "You may not see this page.",
        )
        .into_response(),
    };
    crate::web::add_security_headers(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, uri: &str) -> Vec<String> {
        needs(&method, &uri.parse().unwrap(), None)
            .access
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn requests_map_to_access_records() {
        assert!(of(Method::GET, "/v2/").is_empty());
        assert!(of(Method::GET, "/").is_empty());
        assert!(of(Method::GET, "/v2/A/tags/list").is_empty());
        assert_eq!(of(Method::GET, "/v2/_catalog"), ["registry:catalog:*"]);
        assert_eq!(
            of(Method::GET, "/v2/a/b/tags/list"),
            ["repository:a/b:pull"]
        );
        assert_eq!(of(Method::HEAD, "/v2/a/manifests/x"), ["repository:a:pull"]);
        assert_eq!(
            of(Method::PUT, "/v2/a/manifests/x"),
            ["repository:a:pull", "repository:a:push"]
        );
        assert_eq!(
            of(Method::DELETE, "/v2/a/manifests/x"),
            ["repository:a:delete"]
        );
        assert_eq!(
            of(Method::DELETE, "/v2/a/blobs/sha256:00"),
            ["repository:a:delete"]
        );
        assert_eq!(
            of(Method::GET, "/v2/a/blobs/sha256:00"),
            ["repository:a:pull"]
        );
        assert_eq!(
            of(Method::POST, "/v2/a/blobs/uploads/"),
            ["repository:a:pull", "repository:a:push"]
        );
        assert_eq!(
            of(Method::DELETE, "/v2/a/blobs/uploads/u"),
            ["repository:a:pull", "repository:a:push"]
        );
        assert_eq!(
            of(Method::GET, "/v2/a/blobs/uploads/u"),
            ["repository:a:pull"]
        );
        assert_eq!(
            of(Method::GET, "/v2/a/referrers/sha256:00"),
            ["repository:a:pull"]
        );
        assert_eq!(of(Method::POST, "/disco/v1/gc"), ["registry:admin:*"]);
        assert_eq!(of(Method::GET, "/disco/v1/peers"), ["registry:admin:*"]);
        assert_eq!(of(Method::GET, "/disco/v1/node"), ["registry:admin:*"]);
        assert_eq!(
            of(Method::GET, "/routing/v1/providers/bafkqaaa"),
            ["repository:bafkqaaa:pull"]
        );
        assert!(of(Method::GET, "/routing/v1/peers/12D3KooW").is_empty());
        assert_eq!(
            of(Method::GET, "/disco/v1/images/sha256:abcd"),
            ["repository:abcd:pull"]
        );
        assert_eq!(
            of(Method::GET, "/image?name=a/b&ref=x"),
            ["repository:a/b:pull"]
        );
        assert_eq!(of(Method::GET, "/repo?name=c"), ["repository:c:pull"]);
        assert_eq!(of(Method::GET, "/node"), ["registry:admin:*"]);
        let page = needs(&Method::GET, &"/".parse().unwrap(), None);
        assert!(page.web && !page.public && page.access.is_empty());
        let login = needs(&Method::POST, &"/login".parse().unwrap(), None);
        assert!(login.web && login.public);
        assert!(!needs(&Method::GET, &"/v2/".parse().unwrap(), None).web);
    }

    #[test]
    fn mirror_requests_need_the_local_name() {
        let cfg = crate::config::ProxyConfig {
            upstreams: vec![crate::config::UpstreamConfig {
                name: "docker.io".into(),
                url: "http://127.0.0.1:1".into(),
                username: None,
                password: None,
                ttl: None,
            }],
            ..Default::default()
        };
        let map = crate::mirror::name_map(&cfg);
        let of = |m: Method, uri: &str| -> Vec<String> {
            needs(&m, &uri.parse().unwrap(), Some(&map))
                .access
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            of(
                Method::GET,
                "/v2/library/busybox/manifests/latest?ns=docker.io"
            ),
            ["repository:docker.io/library/busybox:pull"]
        );
        assert_eq!(
            of(
                Method::GET,
                "/v2/library/busybox/blobs/sha256:00?ns=docker.io"
            ),
            ["repository:docker.io/library/busybox:pull"]
        );
        assert_eq!(
            of(
                Method::GET,
                "/v2/library/busybox/manifests/latest?ns=quay.io"
            ),
            ["repository:library/busybox:pull"]
        );
    }

    #[test]
    fn mounts() {
        let n = needs(
            &Method::POST,
            &"/v2/a/blobs/uploads/?mount=sha256:00&from=b"
                .parse()
                .unwrap(),
            None,
        );
        assert_eq!(n.mount_from.as_deref(), Some("b"));
        let n = needs(
            &Method::POST,
            &"/v2/a/blobs/uploads/?mount=sha256:00".parse().unwrap(),
            None,
        );
        assert!(n.anonymous_mount);
        assert_eq!(
            without_mount(
                &"/v2/a/blobs/uploads/?mount=sha256:00&from=b&x=1"
                    .parse()
                    .unwrap()
            )
            .to_string(),
            "/v2/a/blobs/uploads/?x=1"
        );
        assert_eq!(
            without_mount(&"/v2/a/blobs/uploads/?from=b&mount=x".parse().unwrap()).to_string(),
            "/v2/a/blobs/uploads/"
        );
    }
}
