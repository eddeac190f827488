//! Access control: who the caller is (htpasswd Basic credentials or a
//! bearer token), and whether they may do what a request needs.
//!
//! - [`htpasswd`]: Basic authentication against an htpasswd file, with a
//!   short-lived cache of verified credentials.
//! - [`token`] and [`keys`]: Distribution-style bearer tokens (JWT) and the
//!   keys trusted to sign them.
//! - [`rules`]: `auth.access`, per-repository permissions of htpasswd users;
//!   [`holdings`] extends them to the content-addressed names of images.
//! - [`access`]: access records, challenge scopes.
//! - [`reload`]: credential files re-read on change and on SIGHUP.
//!
//! This module decides; `crate::http::auth` is the one layer that asks it,
//! before any handler runs.

pub mod access;
pub mod holdings;
pub mod htpasswd;
pub mod keys;
pub mod reload;
pub mod rules;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;

pub use access::{Access, ResourceType};
use holdings::{Holdings, digest_of_hex};
use htpasswd::Htpasswd;
use rules::{Actions, Rules, Who};
use token::{Grant, TokenAuth};

use crate::config::AuthConfig;
use crate::disco::names::{NameKind, classify};
use crate::registry::{Registry, RepoName};

/// How long a decision allowing a content-addressed name is reused.
const DERIVED_TTL: Duration = Duration::from_secs(10);
/// How long a refusal is reused (short: a push may open the name).
const DERIVED_DENIED_TTL: Duration = Duration::from_secs(1);
/// Most remembered decisions; cleared when full.
const DERIVED_ENTRIES: usize = 4096;
/// Longest `Authorization` header accepted.
pub const MAX_AUTHORIZATION: usize = token::MAX_TOKEN + 16;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// An htpasswd user whose password was verified.
    User(String),
    /// The bearer of a verified token.
    Token(Grant),
}

impl Caller {
    /// A name for logs.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "-",
            Caller::User(u) => u,
            Caller::Token(g) => &g.subject,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// 401 with a challenge: credentials missing or invalid (`error` is
    /// `invalid_token` for a bad token), or a token without the scope
    /// (`insufficient_scope`).
    Challenge {
        /// The challenge's `error` parameter.
        error: Option<&'static str>,
    },
    /// 403: an authenticated user the rules do not allow.
    Forbidden,
}

/// The configured authentication scheme.
pub enum Scheme {
    /// `auth.htpasswd`.
    Basic {
        /// Challenge realm.
        realm: String,
        /// The user file.
        file: Htpasswd,
    },
    /// `auth.token`.
    Bearer(TokenAuth),
}

/// The access controller.
pub struct Auth {
    scheme: Scheme,
    rules: Rules,
    holdings: OnceLock<Holdings>,
    derived: Mutex<HashMap<(String, String), (Instant, bool)>>,
}

impl Auth {
    /// Builds the controller for `auth` (validated), reading its files; a
    /// missing or malformed file is an error naming it. Content-addressed
    /// names are readable through named repositories only once
    /// [`Auth::attach`] gave it the registry.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let scheme = match (&config.htpasswd, &config.token) {
            (Some(h), _) => {
                let path = h.path.as_deref().ok_or("auth.htpasswd.path is required")?;
                let file = Htpasswd::open(path).map_err(|e| e.to_string())?;
                if file.is_empty() {
                    tracing::warn!(path = %path.display(), "the htpasswd file has no users: nobody can sign in");
                }
                Scheme::Basic {
                    realm: h.realm.clone().unwrap_or_else(|| "disco".into()),
                    file,
                }
            }
            (None, Some(t)) => Scheme::Bearer(TokenAuth::new(t)?),
            (None, None) => return Err("auth: no htpasswd or token section".into()),
        };
        Ok(Self {
            scheme,
            rules: Rules::new(config.access.as_ref()),
            holdings: OnceLock::new(),
            derived: Mutex::new(HashMap::new()),
        })
    }

    /// Gives the controller the registry whose repositories it guards.
    pub fn attach(&self, registry: Arc<Registry>) {
        let _ = self.holdings.set(Holdings::new(registry));
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// True if nothing any request could read is withheld from anyone
    /// (every repository is anonymously pullable).
    pub fn everything_public(&self) -> bool {
        matches!(self.scheme, Scheme::Basic { .. }) && self.rules.everything_public()
    }

    /// Re-reads credential files if they changed (or `force`).
    pub fn reload(&self, force: bool) {
        let result = match &self.scheme {
            Scheme::Basic { file, .. } => file.reload(force).map_err(|e| e.to_string()),
            Scheme::Bearer(t) => t.reload(force),
        };
        match result {
            Ok(true) => {
                self.derived.lock().clear();
                tracing::info!("credential files re-read");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "credential file invalid; the previous contents stay in effect")
            }
        }
    }

    /// The htpasswd entry of `user` (a web session stays valid while it
    /// is unchanged); `None` for unknown users or token authentication.
    pub fn user_entry(&self, user: &str) -> Option<String> {
        match &self.scheme {
            Scheme::Basic { file, .. } => file.entry(user),
            Scheme::Bearer(_) => None,
        }
    }

    /// Identifies the caller from the `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, Denial> {
        let Some(raw) = authorization else {
            return Ok(Caller::Anonymous);
        };
        if raw.len() > MAX_AUTHORIZATION {
            tracing::info!(bytes = raw.len(), "Authorization header too large");
            return Err(Denial::Challenge {
                error: matches!(self.scheme, Scheme::Bearer(_)).then_some("invalid_token"),
            });
        }
        let text = std::str::from_utf8(raw).ok();
        let (kind, value) = text
            .and_then(|t| t.split_once(' '))
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or(("", ""));
        match &self.scheme {
            Scheme::Basic { file, .. } => {
                if !kind.eq_ignore_ascii_case("basic") {
                    return Err(Denial::Challenge { error: None });
                }
                let decoded = STANDARD
                    .decode(value)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':'))
                else {
                    return Err(Denial::Challenge { error: None });
                };
                // Clients without credentials answer a Basic challenge
                // with an empty user and password: that is anonymous.
                if user.is_empty() && password.is_empty() {
                    return Ok(Caller::Anonymous);
                }
                if file.verify(user, password).await {
                    Ok(Caller::User(user.to_string()))
                } else {
                    tracing::info!(user, "authentication failed: wrong user or password");
                    Err(Denial::Challenge { error: None })
                }
            }
            Scheme::Bearer(t) => {
                if !kind.eq_ignore_ascii_case("bearer") || value.is_empty() {
                    return Err(Denial::Challenge { error: None });
                }
                match t.verify(value) {
                    Ok(grant) => Ok(Caller::Token(grant)),
                    Err(e) => {
                        tracing::info!(reason = %e, "bearer token refused");
                        Err(Denial::Challenge {
                            error: Some("invalid_token"),
                        })
                    }
                }
            }
        }
    }

    /// Checks that `caller` may do everything in `need`; an empty `need`
    /// asks only for a signed-in caller.
    pub async fn authorize(&self, caller: &Caller, need: &[Access]) -> Result<(), Denial> {
        let refuse = match caller {
            Caller::Anonymous => Denial::Challenge { error: None },
            Caller::User(_) => Denial::Forbidden,
            Caller::Token(_) => Denial::Challenge {
                error: Some("insufficient_scope"),
            },
        };
        if need.is_empty() {
            return match caller {
                Caller::Anonymous => Err(refuse),
                _ => Ok(()),
            };
        }
        for a in need {
            if !self.allows(caller, a).await {
                return Err(refuse);
            }
        }
        Ok(())
    }

    async fn allows(&self, caller: &Caller, a: &Access) -> bool {
        let who = match caller {
            Caller::Token(g) => return g.allows(a),
            Caller::Anonymous if matches!(self.scheme, Scheme::Bearer(_)) => return false,
            Caller::Anonymous => Who::Anonymous,
            Caller::User(u) => Who::User(u),
        };
        match (a.kind, a.name.as_str()) {
            (ResourceType::Registry, "catalog") => {
                matches!(who, Who::User(_)) || self.rules.any_anonymous()
            }
            (ResourceType::Registry, _) => self.rules.is_admin(who),
            (ResourceType::Repository, name) => {
                let Some(want) = Actions::parse(&a.action) else {
                    return false;
                };
                if self.rules.actions(who, name).contains(want) {
                    return true;
                }
                want == Actions::PULL && self.derived_pull(who, name).await
            }
        }
    }

    /// Pull on a content-addressed name through a named repository holding
    /// the same image.
    async fn derived_pull(&self, who: Who<'_>, name: &str) -> bool {
        let Ok(repo) = RepoName::parse(name) else {
            return false;
        };
        if classify(&repo) == NameKind::Normal {
            return false;
        }
        let key = (
            match who {
                Who::Anonymous => String::new(),
                Who::User(u) => format!("u:{u}"),
            },
            name.to_string(),
        );
        if let Some(&(until, ok)) = self.derived.lock().get(&key)
            && until > Instant::now()
        {
            return ok;
        }
        let Some(holdings) = self.holdings.get() else {
            return false;
        };
        let ok = match holdings.image_of(&repo).await {
            Some(d) => {
                let readable = |r: &str| self.rules.actions(who, r).contains(Actions::PULL);
                holdings.held_in_readable(&d, &readable).await
            }
            None => false,
        };
        let mut cache = self.derived.lock();
        if cache.len() >= DERIVED_ENTRIES {
            cache.clear();
        }
        let ttl = if ok { DERIVED_TTL } else { DERIVED_DENIED_TTL };
        cache.insert(key, (Instant::now() + ttl, ok));
        ok
    }

    /// The repositories of `names` that `caller` may pull (the catalog).
    pub async fn visible(&self, caller: &Caller, names: Vec<String>) -> Vec<String> {
        let who = match caller {
            // A token with `registry:catalog:*` sees the whole catalog, as
            // in Distribution.
            Caller::Token(_) => return names,
            Caller::Anonymous if matches!(self.scheme, Scheme::Bearer(_)) => return Vec::new(),
            Caller::Anonymous => Who::Anonymous,
            Caller::User(u) => Who::User(u),
        };
        if self.rules.is_admin(who) {
            return names;
        }
        let readable = |r: &str| self.rules.actions(who, r).contains(Actions::PULL);
        let Some(holdings) = self.holdings.get() else {
            return names.into_iter().filter(|n| readable(n)).collect();
        };
        let mut images = None;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if readable(&n) {
                out.push(n);
                continue;
            }
            let Ok(repo) = RepoName::parse(&n) else {
                continue;
            };
            let image = match classify(&repo) {
                NameKind::Normal => continue,
                NameKind::Digest => digest_of_hex(&n),
                NameKind::Cid { .. } => holdings.image_of(&repo).await,
            };
            let Some(image) = image else { continue };
            if images.is_none() {
                images = Some(holdings.readable_images(&readable).await);
            }
            if images.as_ref().is_some_and(|s| s.contains(&image)) {
                out.push(n);
            }
        }
        out
    }

    /// The `WWW-Authenticate` value for a refused request: `host` and
    /// `proto` are the request's (for `autoredirect`).
    pub fn challenge(
        &self,
        host: Option<&str>,
        proto: Option<&str>,
        need: &[Access],
        error: Option<&str>,
    ) -> String {
        match &self.scheme {
            Scheme::Basic { realm, .. } => format!("Basic realm={}", quote(realm)),
            Scheme::Bearer(t) => {
                let realm = match (&t.autoredirect, host) {
                    (Some(path), Some(host)) => {
                        format!("{}://{host}{path}", proto.unwrap_or("https"))
                    }
                    _ => t.realm.clone().unwrap_or_default(),
                };
                let mut s = format!(
                    "Bearer realm={},service={}",
                    quote(&realm),
                    quote(&t.service)
                );
                let scope = access::scope_param(need);
                if !scope.is_empty() {
                    s.push_str(&format!(",scope={}", quote(&scope)));
                }
                if let Some(e) = error {
                    s.push_str(&format!(",error={}", quote(e)));
                }
                s
            }
        }
    }
}

/// A quoted-string of RFC 7230 (`"` and `\` escaped).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}
