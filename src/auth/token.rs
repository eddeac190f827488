//! Bearer tokens as Distribution verifies them: a JWS-signed JWT whose
//! signing key is found through its `x5c` chain (to `rootcertbundle`) or its
//! `kid` (a root certificate's key or a JWK Set key), signed with an
//! accepted asymmetric algorithm; `iss` must be the configured issuer, `aud`
//! the service, `exp`/`nbf` hold within the leeway; the `access` claim lists
//! what the bearer may do.
//!
//! Everything about a token is untrusted input: sizes are bounded before
//! anything is decoded, and every failure is an `invalid_token` challenge,
//! never a server error.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use parking_lot::RwLock;
use serde::Deserialize;

use super::access::{Access, ResourceType};
use super::keys::TrustedKeys;
use super::reload::FileStamp;
use crate::config::TokenConfig;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN: usize = 16 * 1024;

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `sub`.
    pub subject: String,
    /// The `access` claim, one record per action.
    pub access: Vec<Access>,
}

impl Grant {
    /// True if the token grants `want` (`*` in the claim grants every
    /// action on its resource).
    pub fn allows(&self, want: &Access) -> bool {
        self.access.iter().any(|a| {
            a.kind == want.kind
                && a.name == want.name
                && (a.action == want.action || a.action == "*")
        })
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawAccess {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    access: Vec<RawAccess>,
}

/// The token verifier of `auth.token`.
pub struct TokenAuth {
    /// Challenge realm (absent with `autoredirect`).
    pub realm: Option<String>,
    /// Path of the realm on the request's host, with `autoredirect`.
    pub autoredirect: Option<String>,
    /// The service (audience).
    pub service: String,
    issuer: String,
    leeway: u64,
    algorithms: Vec<Algorithm>,
    files: (Option<PathBuf>, Option<PathBuf>),
    keys: RwLock<(Arc<TrustedKeys>, FileStamp, FileStamp)>,
}

fn algorithm(name: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        _ => return None,
    })
}

fn stamp(p: &Option<PathBuf>) -> FileStamp {
    FileStamp::of(p.as_deref().unwrap_or(std::path::Path::new("")))
}

impl TokenAuth {
    /// Loads the trusted keys named by the configuration.
    pub fn new(c: &TokenConfig) -> Result<Self, String> {
        let files = (c.rootcertbundle.clone(), c.jwks.clone());
        let stamps = (stamp(&files.0), stamp(&files.1));
        let keys = TrustedKeys::load(files.0.as_deref(), files.1.as_deref())?;
        let names: Vec<String> = if c.signingalgorithms.is_empty() {
            crate::config::SIGNING_ALGORITHMS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            c.signingalgorithms.clone()
        };
        Ok(Self {
            realm: c.realm.clone(),
            autoredirect: c.autoredirect.then(|| c.autoredirectpath.clone()),
            service: c.service.clone().unwrap_or_default(),
            issuer: c.issuer.clone().unwrap_or_default(),
            leeway: c.leeway.as_secs(),
            algorithms: names.iter().filter_map(|n| algorithm(n)).collect(),
            keys: RwLock::new((Arc::new(keys), stamps.0, stamps.1)),
            files,
        })
    }

    /// Re-reads the key files if they changed (or `force`); on failure the
    /// previous keys stay.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let stamps = (stamp(&self.files.0), stamp(&self.files.1));
        {
            let k = self.keys.read();
            if !force && stamps.0 == k.1 && stamps.1 == k.2 {
                return Ok(false);
            }
        }
        let keys = TrustedKeys::load(self.files.0.as_deref(), self.files.1.as_deref())?;
        *self.keys.write() = (Arc::new(keys), stamps.0, stamps.1);
        Ok(true)
    }

    /// Verifies a raw token; the error says why (for the log only).
    pub fn verify(&self, raw: &str) -> Result<Grant, String> {
        if raw.len() > MAX_TOKEN {
            return Err(format!("token longer than {MAX_TOKEN} bytes"));
        }
        let mut parts = raw.split('.');
        let (Some(h), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (three dot-separated parts)".into());
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| "header is not base64url".to_string())?;
        let header: RawHeader =
            serde_json::from_slice(&header_json).map_err(|e| format!("invalid header: {e}"))?;
        let alg = algorithm(&header.alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| format!("signing algorithm {:?} is not accepted", header.alg))?;
        let keys = self.keys.read().0.clone();
        let key = match (&header.x5c, &header.kid) {
            (Some(x5c), _) => keys.verify_chain(x5c)?,
            (None, Some(kid)) => keys
                .by_kid(kid)
                .cloned()
                .ok_or_else(|| format!("token signed by an untrusted key {kid:?}"))?,
            (None, None) => return Err("token names no signing key (x5c or kid)".into()),
        };
        if !key.allows(alg) {
            return Err(format!(
                "algorithm {:?} does not match the signing key",
                header.alg
            ));
        }
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.service]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<RawClaims>(raw, &key.decoding_key()?, &v)
            .map_err(|e| format!("token rejected: {e}"))?;
        let mut access = Vec::new();
        for a in data.claims.access {
            let kind = match a.kind.as_str() {
                "repository" => ResourceType::Repository,
                "registry" => ResourceType::Registry,
                _ => continue,
            };
            for action in a.actions {
                access.push(Access {
                    kind,
                    name: a.name.clone(),
                    action,
                });
            }
        }
        Ok(Grant {
            subject: data.claims.sub,
            access,
        })
    }
}
