//! Credentials of the node commands (`disco id`, `peers`, `gc`) for a
//! disco with access control, given as registry clients take them:
//! `--creds USER:PASSWORD` or `DISCO_CREDS` (the environment keeps the
//! password out of the process list).
//!
//! Requests carry Basic credentials; a `Bearer` challenge is answered with
//! the Docker token flow: a token for the challenge's `scope` is fetched
//! from its `realm` with the same credentials, and the request retried
//! once with it.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A user and password.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.user)
    }
}

impl Credentials {
    /// Parses `USER:PASSWORD`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Self {
                user: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err("credentials must be USER:PASSWORD".into()),
        }
    }

    fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.user, self.password))
        )
    }
}

static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

/// Sets the credentials of this process's requests (once, at start).
pub fn set(c: Credentials) {
    let _ = CREDENTIALS.set(c);
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",...` challenge.
pub fn bearer_params(challenge: &str) -> Option<Vec<(String, String)>> {
    let rest = challenge
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| challenge.trim().strip_prefix("bearer "))?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key.trim().to_ascii_lowercase(), value));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

async fn token(
    http: &reqwest::Client,
    creds: &Credentials,
    challenge: &str,
) -> Result<String, String> {
    let params = bearer_params(challenge).ok_or("unreadable Bearer challenge")?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let realm = get("realm").ok_or("Bearer challenge without realm")?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for k in ["service", "scope"] {
        if let Some(v) = get(k) {
            query.append_pair(k, &v);
        }
    }
    let sep = if realm.contains('?') { '&' } else { '?' };
    let resp = http
        .get(format!("{realm}{sep}{}", query.finish()))
        .header(reqwest::header::AUTHORIZATION, creds.basic())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("token service {realm}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("token service {realm}: {}", resp.status()));
    }
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| format!("token service {realm}: {e}"))?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("token service {realm}: no token in the answer"))
}

/// Sends `req` with the process's credentials, following a Bearer
/// challenge once.
pub async fn send(
    http: &reqwest::Client,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let Some(creds) = CREDENTIALS.get() else {
        return req.send().await;
    };
    let retry = req.try_clone();
    let resp = req
        .header(reqwest::header::AUTHORIZATION, creds.basic())
        .send()
        .await?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(resp);
    }
    let Some(challenge) = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .filter(|c| c.to_ascii_lowercase().starts_with("bearer"))
        .map(str::to_string)
    else {
        return Ok(resp);
    };
    let (Some(retry), Ok(t)) = (retry, token(http, creds, &challenge).await) else {
        return Ok(resp);
    };
    retry.bearer_auth(t).send().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let p = bearer_params(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(
            p,
            [
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "reg".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
                ("error".into(), "insufficient_scope".into()),
            ]
        );
        assert!(bearer_params(r#"Basic realm="x""#).is_none());
        assert_eq!(
            bearer_params(r#"Bearer realm="a\"b""#).unwrap()[0].1,
            "a\"b"
        );
    }

    #[test]
    fn credentials() {
        let c = Credentials::parse("u:p:q").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "p:q"));
        assert!(Credentials::parse("nopassword").is_err());
        assert!(Credentials::parse(":p").is_err());
        assert!(!format!("{c:?}").contains("p:q"));
    }
}
