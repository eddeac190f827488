//! `GET`/`POST /login`, `POST /logout`: sign-in on the web page with the
//! registry's htpasswd credentials. A good password opens a session
//! ([`super::session`]). With token authentication (`auth.token`) there is
//! no form: the token service signs people in, and pages accept
//! `Authorization: Bearer <token>` as the API does.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::html::{esc, page};
use super::routes::param;
use super::session::{self, clear_cookie, cookie_id, set_cookie};
use super::{PageError, PageResult, Web};
use crate::auth::{Caller, Scheme};

/// Largest sign-in form body.
const MAX_FORM: usize = 8 * 1024;

/// Where to go after signing in: a local path only (no other site).
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/".into(),
    }
}

fn form_page(web: &Web, next: &str, error: Option<&str>) -> String {
    let body = match web.auth.as_ref().map(|a| a.scheme()) {
        None => "<h1>Sign in</h1><p>Access control is off: every page is open. <a href=\"/\">Repositories</a></p>".to_string(),
        Some(Scheme::Bearer(_)) => "<h1>Sign in</h1><p>This registry signs people in through its token service (<code>auth.token</code>); the web page has no password form. Send <code>Authorization: Bearer &lt;token&gt;</code> (e.g. from a proxy) to view the pages.</p>".to_string(),
        Some(Scheme::Basic { .. }) => format!(
            "<form class=\"login\" method=\"post\" action=\"/login\"><h1>Sign in</h1>{}<label>User <input type=\"text\" name=\"user\" id=\"user\" autocomplete=\"username\" required></label><label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label><input type=\"hidden\" name=\"next\" value=\"{}\"><button type=\"submit\" id=\"signin\">Sign in</button></form>",
            error
                .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
                .unwrap_or_default(),
            esc(next)
        ),
    };
    page("Sign in", None, &body, None)
}

fn html_status(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /login?next=`: the form.
pub async fn form(State(web): State<Web>, req: Request) -> Response {
    let next = safe_next(param(req.uri().query(), "next"));
    html_status(StatusCode::OK, form_page(&web, &next, None))
}

/// `POST /login`: checks the credentials, opens a session, goes on.
pub async fn post(State(web): State<Web>, req: Request<Body>) -> PageResult {
    let Some(auth) = web.auth.clone() else {
        return Ok(redirect("/", None));
    };
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
        .await
        .map_err(|_| PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "sign-in form too large"))?;
    let text = String::from_utf8_lossy(&body);
    let field = |k: &str| param(Some(&text), k).unwrap_or_default();
    let (user, password) = (field("user"), field("password"));
    let next = safe_next(Some(field("next")));
    if !matches!(auth.scheme(), Scheme::Basic { .. }) {
        return Ok(html_status(
            StatusCode::BAD_REQUEST,
            form_page(&web, &next, None),
        ));
    }
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    match auth.authenticate(Some(basic.as_bytes())).await {
        Ok(Caller::User(u)) => {
            tracing::info!(user = %u, "signed in on the web page");
            let entry = auth.user_entry(&u).unwrap_or_default();
            let id = web.sessions.open(&u, &entry);
            let cookie = set_cookie(&id, web.sessions.ttl(), web.tls);
            Ok(redirect(&next, Some(cookie)))
        }
        _ => Ok(html_status(
            StatusCode::UNAUTHORIZED,
            form_page(&web, &next, Some("Wrong user or password.")),
        )),
    }
}

/// `POST /logout`: ends the session.
pub async fn logout(State(web): State<Web>, req: Request) -> Response {
    if let Some(id) = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(cookie_id)
    {
        web.sessions.close(id);
    }
    redirect("/login", Some(clear_cookie(web.tls)))
}

/// A 303 to `to`, optionally setting a cookie.
pub fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut resp = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to);
    if let Some(c) = cookie {
        resp = resp.header(header::SET_COOKIE, c);
    }
    resp.body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The cookie's session user, if the request carries a live one.
pub fn session_user(
    sessions: &session::Sessions,
    auth: &crate::auth::Auth,
    headers: &axum::http::HeaderMap,
) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(cookie_id)
        .and_then(|id| sessions.user(id, |u| auth.user_entry(u)))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/repo?name=a".into())), "/repo?name=a");
        assert_eq!(safe_next(Some("//evil.example/".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example/".into())), "/");
        assert_eq!(safe_next(Some("/\\evil".into())), "/");
        assert_eq!(safe_next(None), "/");
    }
}
