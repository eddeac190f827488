//! The client of one upstream registry: Basic auth, or Docker Hub's
//! bearer-token flow (`WWW-Authenticate: Bearer realm=,service=,scope=`),
//! with bounded timeouts. Credentials are never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures::TryStreamExt;
use parking_lot::Mutex;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::error::MirrorError;
use crate::config::UpstreamConfig;
use crate::storage::ByteStream;

/// Manifest media types asked for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest read from an upstream.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// Largest token response read.
const MAX_TOKEN: usize = 1024 * 1024;
/// Tokens without `expires_in` live this long (Distribution's default).
const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A blob stream silent this long fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One configured upstream.
pub struct Upstream {
    /// Registry name (`docker.io`).
    pub name: String,
    /// Base URL, without a trailing slash.
    base: String,
    username: Option<String>,
    password: Option<String>,
    /// Tag TTL.
    pub ttl: Duration,
    timeout: Duration,
    client: reqwest::Client,
    /// Bearer tokens by scope, with their expiry.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The upstream asked for Basic auth.
    basic: Mutex<bool>,
}

/// A manifest fetched upstream.
pub struct FetchedManifest {
    /// Its bytes.
    pub bytes: Bytes,
    /// `Docker-Content-Digest`, if sent.
    pub digest: Option<String>,
}

impl Upstream {
    /// The client of `cfg`, with `timeout` for connecting and answering.
    pub fn new(cfg: &UpstreamConfig, ttl: Duration, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(READ_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            name: cfg.name.clone(),
            base: cfg.url.trim_end_matches('/').to_string(),
            username: cfg.username.clone(),
            password: cfg.password.as_ref().map(|p| p.0.clone()),
            ttl: cfg.ttl.unwrap_or(ttl),
            timeout,
            client,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
        })
    }

    fn basic_header(&self) -> Option<String> {
        let user = self.username.as_ref()?;
        let pass = self.password.as_deref().unwrap_or("");
        let raw = format!("{user}:{pass}");
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    fn cached_auth(&self, scope: &str) -> Option<String> {
        if *self.basic.lock() {
            return self.basic_header();
        }
        let tokens = self.tokens.lock();
        tokens
            .get(scope)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| format!("Bearer {t}"))
    }

    /// Sends a request for `path` (below `/v2/`) with the credentials the
    /// upstream asks for; `repo` gives the token scope.
    async fn send(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, MirrorError> {
        let scope = format!("repository:{repo}:pull");
        let url = format!("{}/v2/{path}", self.base);
        let mut auth = self.cached_auth(&scope);
        for attempt in 0..2 {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match tokio::time::timeout(self.timeout, req.send()).await {
                Err(_) => return Err(self.down(format!("no answer within {:?}", self.timeout))),
                Ok(Err(e)) => return Err(self.down(error_chain(&e))),
                Ok(Ok(r)) => r,
            };
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                auth = Some(self.authorize(&challenge, &scope).await?);
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn down(&self, why: String) -> MirrorError {
        MirrorError::Unavailable {
            upstream: self.name.clone(),
            why,
        }
    }

    /// Answers a `WWW-Authenticate` challenge: the Authorization value.
    async fn authorize(&self, challenge: &str, scope: &str) -> Result<String, MirrorError> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            *self.basic.lock() = true;
            return self.basic_header().ok_or_else(|| MirrorError::Auth {
                upstream: self.name.clone(),
                why: "it asks for Basic credentials and none are configured".into(),
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(MirrorError::Auth {
                upstream: self.name.clone(),
                why: format!("unsupported authentication scheme {scheme:?}"),
            });
        }
        let realm = params.get("realm").ok_or_else(|| MirrorError::Auth {
            upstream: self.name.clone(),
            why: "Bearer challenge without realm".into(),
        })?;
        let scope = params.get("scope").map(String::as_str).unwrap_or(scope);
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = params.get("service") {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
            q.finish()
        };
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{query}");
        let mut req = self.client.get(url);
        if let Some(b) = self.basic_header() {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = match tokio::time::timeout(self.timeout, req.send()).await {
            Err(_) => return Err(self.down("token service did not answer".into())),
            Ok(Err(e)) => return Err(self.down(format!("token service: {}", error_chain(&e)))),
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            return Err(MirrorError::Auth {
                upstream: self.name.clone(),
                why: format!("token service answered {}", resp.status()),
            });
        }
        let body = read_limited(resp, MAX_TOKEN)
            .await
            .map_err(|e| self.down(e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| MirrorError::Auth {
                upstream: self.name.clone(),
                why: format!("token response is not JSON: {e}"),
            })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| MirrorError::Auth {
                upstream: self.name.clone(),
                why: "token response has no token".into(),
            })?
            .to_string();
        let life = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .map(Duration::from_secs)
            .unwrap_or(TOKEN_LIFETIME);
        // Renew a little early.
        let expiry = Instant::now() + life.saturating_sub(Duration::from_secs(5));
        self.tokens
            .lock()
            .insert(scope.to_string(), (token.clone(), expiry));
        Ok(format!("Bearer {token}"))
    }

    /// `HEAD` a manifest: `Some` with its digest, if the upstream sent one,
    /// or `None` if the upstream does not have it.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Option<String>>, MirrorError> {
        let resp = self
            .send(
                Method::HEAD,
                &format!("{repo}/manifests/{reference}"),
                repo,
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(digest_header(resp.headers()))),
            s => Err(self.status_error(s, "manifest HEAD")),
        }
    }

    /// `GET` a manifest (at most [`MAX_MANIFEST`] bytes); `None` if the
    /// upstream does not have it.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, MirrorError> {
        let resp = self
            .send(
                Method::GET,
                &format!("{repo}/manifests/{reference}"),
                repo,
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let digest = digest_header(resp.headers());
                let bytes = read_limited(resp, MAX_MANIFEST)
                    .await
                    .map_err(|e| self.down(e))?;
                Ok(Some(FetchedManifest { bytes, digest }))
            }
            s => Err(self.status_error(s, "manifest GET")),
        }
    }

    /// `HEAD` a blob: its size, or `None` if the upstream lacks it.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<Option<u64>, MirrorError> {
        let resp = self
            .send(Method::HEAD, &format!("{repo}/blobs/{digest}"), repo, None)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            s => Err(self.status_error(s, "blob HEAD")),
        }
    }

    /// `GET` a blob (redirects followed): its announced size and stream,
    /// or `None` if the upstream lacks it.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<(Option<u64>, ByteStream)>, MirrorError> {
        let resp = self
            .send(Method::GET, &format!("{repo}/blobs/{digest}"), repo, None)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let len = resp.content_length();
                let s: ByteStream = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
                Ok(Some((len, s)))
            }
            s => Err(self.status_error(s, "blob GET")),
        }
    }

    fn status_error(&self, s: StatusCode, what: &str) -> MirrorError {
        if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN {
            MirrorError::Auth {
                upstream: self.name.clone(),
                why: format!("{what} answered {s}"),
            }
        } else {
            self.down(format!("{what} answered {s}"))
        }
    }
}

fn digest_header(h: &HeaderMap) -> Option<String> {
    h.get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let mut out = bytes::BytesMut::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.try_next().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Splits `Bearer realm="x",service="y"` into the scheme and parameters.
pub fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(k, v.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn secrets_are_not_printed() {
        let cfg = UpstreamConfig {
            name: "x".into(),
            url: "http://127.0.0.1:1".into(),
            username: Some("u".into()),
            password: Some(crate::config::Secret("hunter2".into())),
            ttl: None,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
