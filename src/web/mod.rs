//! The web page at `/` on the main port: server-rendered HTML (the lists
//! work without JavaScript), static assets embedded in the binary.
//!
//! - [`routes`]: the paths and what each needs (the auth layer asks it).
//! - [`html`]: escaping and the page frame.
//! - [`repos`], [`repo`], [`image`], [`node`]: one file per page.
//! - [`login`] and [`session`]: sign-in with the registry's htpasswd
//!   credentials, a session cookie accepted on web pages only.
//! - [`assets`]: CSS, a small script (copy buttons) and the icon.
//!
//! Every response carries strict security headers ([`security_headers`]).

pub mod assets;
pub mod html;
pub mod image;
pub mod login;
pub mod node;
pub mod repo;
pub mod repos;
pub mod routes;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::{Auth, Caller};
use crate::disco::Disco;
use crate::http::auth::Authorized;
use crate::ipfs::embedded::EmbeddedIpfs;
use crate::ipfs::embedded::net::Network;
use crate::registry::{Registry, RegistryError};
use session::Sessions;

/// The Content-Security-Policy of every page: no inline script or style.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// What the pages read.
#[derive(Clone)]
pub struct Web {
    /// The registry.
    pub registry: Arc<Registry>,
    /// The content-addressed image layer (CIDs, clones, node identity).
    pub disco: Option<Disco>,
    /// The embedded IPFS node (store, garbage collection).
    pub node: Option<EmbeddedIpfs>,
    /// Its networking (peers, addresses).
    pub network: Option<Network>,
    /// The network mode, described (`private (swarm key)`, `public`, ...).
    pub net_mode: String,
    /// Access control, when on.
    pub auth: Option<Arc<Auth>>,
    /// Sign-in sessions.
    pub sessions: Arc<Sessions>,
    /// The main port serves TLS (cookies are `Secure`).
    pub tls: bool,
    /// The store size, cached (walking the store is not free).
    store_size: Arc<parking_lot::Mutex<Option<(std::time::Instant, u64)>>>,
}

impl Web {
    /// The page state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        disco: Option<Disco>,
        node: Option<EmbeddedIpfs>,
        network: Option<Network>,
        net_mode: String,
        auth: Option<Arc<Auth>>,
        sessions: Arc<Sessions>,
        tls: bool,
    ) -> Self {
        Self {
            registry,
            disco,
            node,
            network,
            net_mode,
            auth,
            sessions,
            tls,
            store_size: Arc::default(),
        }
    }
}

/// The web routes.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(repos::get))
        .route("/repo", get(repo::get))
        .route("/image", get(image::get))
        .route("/node", get(node::get))
        .route("/login", get(login::form).post(login::post))
        .route("/logout", post(login::logout))
        .route("/static/{file}", get(assets::get))
        .route("/favicon.ico", get(assets::favicon))
        .with_state(web)
}

/// Adds the security headers to every web response (pages, refusals).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let web = routes::classify(req.uri().path(), None).is_some();
    let mut resp = next.run(req).await;
    if web {
        add_security_headers(&mut resp);
    }
    resp
}

/// Sets CSP, `nosniff`, frame denial and the referrer policy.
pub fn add_security_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Who is looking: the caller the auth layer identified (none when access
/// control is off).
#[derive(Clone, Default)]
pub struct Viewer(pub Option<Authorized>);

impl Viewer {
    /// From the request's extensions.
    pub fn of(req: &axum::http::request::Parts) -> Self {
        Viewer(req.extensions.get::<Authorized>().cloned())
    }

    /// The name shown in the header, for a signed-in caller.
    pub fn name(&self) -> Option<&str> {
        match self.0.as_ref().map(|a| &a.caller) {
            Some(Caller::User(u)) => Some(u),
            Some(Caller::Token(g)) => Some(&g.subject),
            _ => None,
        }
    }

    /// The repositories of `names` this viewer may pull (all without
    /// access control): the catalog's filter.
    pub async fn visible(&self, names: Vec<String>) -> Vec<String> {
        match &self.0 {
            Some(a) => a.auth.visible(&a.caller, names).await,
            None => names,
        }
    }
}

/// An HTML response with status 200.
pub fn html(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A failure shown as a page.
pub struct PageError {
    /// HTTP status.
    pub status: StatusCode,
    /// What to tell the reader (text).
    pub message: String,
}

impl PageError {
    /// A failure with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for PageError {
    fn from(e: RegistryError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = e.code.as_str(), "web page: {}", e.message);
        }
        Self {
            status,
            message: format!("{}: {}", e.code.as_str(), e.message),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">Repositories</a></p>",
            html::esc(title),
            html::esc(&self.message)
        );
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::page(title, None, &body, None),
        )
            .into_response()
    }
}

/// A page handler's result.
pub type PageResult = Result<Response, PageError>;
