//! `auth`: who may use the registry. CNCF Distribution's `htpasswd` and
//! `token` sections, read exactly as Distribution reads them, plus disco's
//! own `access` section (per-repository rules for htpasswd users).
//!
//! Any other `auth` kind (`silly`, a plugin) stops disco at start: a
//! configuration asking for protection disco does not give is refused,
//! never ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::duration;

/// `auth`. At most one of `htpasswd` and `token`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Basic authentication against an Apache htpasswd file (bcrypt
    /// entries). Default none.
    pub htpasswd: Option<HtpasswdConfig>,
    /// Bearer tokens (JWT) issued by an external token service. Default
    /// none.
    pub token: Option<TokenConfig>,
    /// disco's per-repository permissions for htpasswd users. Default none:
    /// every authenticated user may do everything (Distribution's model).
    pub access: Option<AccessConfig>,
    /// Any other kind; refused at start.
    #[serde(flatten)]
    pub other: BTreeMap<String, yaml_serde::Value>,
}

impl AuthConfig {
    /// True when some authentication is configured.
    pub fn enabled(&self) -> bool {
        self.htpasswd.is_some() || self.token.is_some()
    }
}

/// Reads `auth` as a mapping, or as Distribution's string form
/// (`REGISTRY_AUTH=htpasswd`: the kind with no parameters).
pub fn auth_section<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AuthConfig>, D::Error> {
    let value = Option::<yaml_serde::Value>::deserialize(d)?;
    let value = match value {
        None | Some(yaml_serde::Value::Null) => return Ok(None),
        Some(yaml_serde::Value::String(kind)) => {
            let mut map = yaml_serde::Mapping::new();
            map.insert(
                yaml_serde::Value::String(kind),
                yaml_serde::Value::Mapping(Default::default()),
            );
            yaml_serde::Value::Mapping(map)
        }
        Some(yaml_serde::Value::Mapping(mut map)) => {
            // `htpasswd:` with every key commented out is a kind asked for
            // without its parameters (refused by validation), not no auth.
            for (_, v) in map.iter_mut() {
                if v.is_null() {
                    *v = yaml_serde::Value::Mapping(Default::default());
                }
            }
            yaml_serde::Value::Mapping(map)
        }
        Some(v) => v,
    };
    AuthConfig::deserialize(value)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `auth.htpasswd`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HtpasswdConfig {
    /// Realm of the `WWW-Authenticate: Basic` challenge. Default
    /// `disco`.
    pub realm: Option<String>,
    /// The htpasswd file (`htpasswd -B` entries, `user:$2y$...`).
    /// Required. Re-read when it changes and on SIGHUP.
    pub path: Option<PathBuf>,
}

/// `auth.token`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// URL of the token service clients are sent to. Required unless
    /// `autoredirect`.
    pub realm: Option<String>,
    /// This registry's name: the `service` of challenges and the audience
    /// tokens must carry. Required.
    pub service: Option<String>,
    /// The `iss` tokens must carry. Required.
    pub issuer: Option<String>,
    /// PEM certificates trusted to sign tokens: a token's `x5c` chain must
    /// end at one of them, or its `kid` name one of their keys (JWK
    /// thumbprint or libtrust key ID). Default none (then `jwks` is
    /// required).
    pub rootcertbundle: Option<PathBuf>,
    /// A JWK Set file whose keys are trusted by `kid`. Default none.
    pub jwks: Option<PathBuf>,
    /// Challenge with the request's own host and `autoredirectpath` as the
    /// realm (the token service is served beside the registry). Default
    /// false.
    pub autoredirect: bool,
    /// Path of the realm with `autoredirect`. Default `/auth/token`.
    pub autoredirectpath: String,
    /// Signature algorithms accepted. Default `RS256, RS384, RS512, PS256,
    /// PS384, PS512, ES256, ES384, EdDSA` (never `none` nor HMAC).
    pub signingalgorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`. Default `60s` (as
    /// Distribution).
    #[serde(deserialize_with = "duration")]
    pub leeway: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            realm: None,
            service: None,
            issuer: None,
            rootcertbundle: None,
            jwks: None,
            autoredirect: false,
            autoredirectpath: "/auth/token".into(),
            signingalgorithms: Vec::new(),
            leeway: Duration::from_secs(60),
        }
    }
}

/// `auth.access`: permissions of htpasswd users.
///
/// ```yaml
/// auth:
///   access:
///     admins: [alice]                # every permission, and the admin API
///     groups:
///       team-a: [bob, carol]
///     rules:
///       - repositories: ["team-a/**"]
///         groups: [team-a]
///         actions: [pull, push, delete]
///       - repositories: ["public/**"]
///         users: ["*"]               # every authenticated user
///         actions: [pull]
///         anonymous: [pull]          # and anyone without credentials
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    /// Users allowed everything, including `/disco/v1` administration.
    /// Default none.
    pub admins: Vec<String>,
    /// Named groups of users. Default none.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules; a user's permissions on a repository are the union of the
    /// rules that match it. Default none (only admins may do anything).
    pub rules: Vec<RuleConfig>,
}

/// One rule of `auth.access.rules`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RuleConfig {
    /// Repository name globs: `*` matches within one path component, `**`
    /// any number of components, `?` one character. Required.
    pub repositories: Vec<String>,
    /// Users the rule grants `actions` to; `*` means every authenticated
    /// user. Default none.
    pub users: Vec<String>,
    /// Groups the rule grants `actions` to. Default none.
    pub groups: Vec<String>,
    /// `pull`, `push`, `delete` (or `*` for all three). Default none.
    pub actions: Vec<String>,
    /// Actions allowed without credentials: only `pull`. Default none.
    pub anonymous: Vec<String>,
}

/// Actions `auth.access` rules may grant.
pub const ACTIONS: [&str; 3] = ["pull", "push", "delete"];

/// Algorithms `auth.token.signingalgorithms` may list.
pub const SIGNING_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl AuthConfig {
    /// Checks the section's shape; `Err((key below auth, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if let Some(kind) = self.other.keys().next() {
            return err(
                kind,
                format!(
                    "auth kind {kind:?} is not supported by disco (htpasswd and token are); \
                     disco refuses to start rather than run an open registry"
                ),
            );
        }
        match (&self.htpasswd, &self.token) {
            (Some(_), Some(_)) => {
                return err(
                    "token",
                    "configure one of auth.htpasswd and auth.token, not both".into(),
                );
            }
            (None, None) if self.access.is_some() => {
                return err(
                    "access",
                    "auth.access needs auth.htpasswd (it names htpasswd users)".into(),
                );
            }
            _ => {}
        }
        if let Some(h) = &self.htpasswd
            && h.path.is_none()
        {
            return err("htpasswd.path", "required: the htpasswd file".into());
        }
        if let Some(t) = &self.token {
            if self.access.is_some() {
                return err(
                    "access",
                    "auth.access applies to auth.htpasswd users; with auth.token the token's \
                     access claims decide (grant `registry:admin:*` for the admin API)"
                        .into(),
                );
            }
            t.validate()?;
        }
        if let Some(a) = &self.access {
            a.validate()?;
        }
        Ok(())
    }
}

impl TokenConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((format!("token.{k}"), m.to_string()));
        if self.service.as_deref().unwrap_or("").is_empty() {
            return err("service", "required: the registry's name, tokens' audience");
        }
        if self.issuer.as_deref().unwrap_or("").is_empty() {
            return err("issuer", "required: the token service's `iss`");
        }
        if !self.autoredirect && self.realm.as_deref().unwrap_or("").is_empty() {
            return err("realm", "required: the token service's URL");
        }
        if self.autoredirect && !self.autoredirectpath.starts_with('/') {
            return err("autoredirectpath", "must be an absolute path");
        }
        if self.rootcertbundle.is_none() && self.jwks.is_none() {
            return err(
                "rootcertbundle",
                "token auth needs trusted signing keys: rootcertbundle or jwks",
            );
        }
        if let Some(j) = &self.jwks {
            let s = j.to_string_lossy();
            if s.contains("://") {
                return err(
                    "jwks",
                    "only a JWK Set file is supported, not a URL (fetch it to a file)",
                );
            }
        }
        for a in &self.signingalgorithms {
            if !SIGNING_ALGORITHMS.contains(&a.as_str()) {
                return Err((
                    "token.signingalgorithms".into(),
                    format!(
                        "{a:?} is not accepted (one of {})",
                        SIGNING_ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl AccessConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (i, r) in self.rules.iter().enumerate() {
            let key = |k: &str| format!("access.rules[{i}].{k}");
            if r.repositories.is_empty() {
                return Err((key("repositories"), "required: repository globs".into()));
            }
            for g in &r.repositories {
                if g.is_empty() || g.starts_with('/') || g.ends_with('/') || g.contains("//") {
                    return Err((key("repositories"), format!("invalid glob {g:?}")));
                }
            }
            for a in &r.actions {
                if a != "*" && !ACTIONS.contains(&a.as_str()) {
                    return Err((
                        key("actions"),
                        format!("{a:?} is not pull, push, delete or *"),
                    ));
                }
            }
            for a in &r.anonymous {
                if a != "pull" {
                    return Err((
                        key("anonymous"),
                        format!("{a:?}: anonymous users may only be granted pull"),
                    ));
                }
            }
            for g in &r.groups {
                if !self.groups.contains_key(g) {
                    return Err((key("groups"), format!("unknown group {g:?}")));
                }
            }
            if !r.actions.is_empty() && r.users.is_empty() && r.groups.is_empty() {
                return Err((
                    key("actions"),
                    "granted to nobody: list users or groups".into(),
                ));
            }
        }
        Ok(())
    }
}
