//! `proxy`: pull-through mirroring of upstream registries.
//!
//! Distribution's form (`remoteurl`, `username`, `password`, `ttl`) mirrors
//! one upstream under plain repository names; `upstreams` mirrors several,
//! chosen by containerd's `?ns=<registry>` parameter (stored as
//! `<ns>/<repo>`), with `default` naming the upstream of requests without
//! `ns` (Docker's `registry-mirrors`).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `proxy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    /// Distribution's single upstream URL (`https://registry-1.docker.io`);
    /// every repository is then mirrored under its plain name. Default none.
    pub remoteurl: Option<String>,
    /// User for `remoteurl`. Default none.
    pub username: Option<String>,
    /// Password for `remoteurl`. Default none.
    pub password: Option<Secret>,
    /// How long a tag resolved upstream is trusted before it is asked
    /// again. Default `10m` (Distribution caches blobs for 168h; tags are
    /// what changes).
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// Several upstreams, chosen by `?ns=` (containerd's `hosts.toml`).
    pub upstreams: Vec<UpstreamConfig>,
    /// The upstream (by `name`) of requests without `ns`; its images are
    /// stored under plain names. Default none: such requests are local.
    pub default: Option<String>,
    /// How long a pull asks peers on the IPFS network for an image before
    /// fetching it from upstream. Default `3s`.
    #[serde(deserialize_with = "duration")]
    pub peertimeout: Duration,
    /// How long a request to an upstream may take to answer (headers).
    /// Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            remoteurl: None,
            username: None,
            password: None,
            ttl: Duration::from_secs(600),
            upstreams: Vec::new(),
            default: None,
            peertimeout: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One upstream of `proxy.upstreams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The registry name clients use (`docker.io`, `ghcr.io`): the `ns`
    /// containerd sends, and the first component of local names.
    pub name: String,
    /// Base URL (`https://registry-1.docker.io`).
    pub url: String,
    /// User. Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// Password. Default none.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Tag TTL for this upstream. Default `proxy.ttl`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub ttl: Option<Duration>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl ProxyConfig {
    /// True when anything is mirrored.
    pub fn enabled(&self) -> bool {
        self.remoteurl.is_some() || !self.upstreams.is_empty()
    }

    /// Checks the section: URLs parse, names are unique registry names, a
    /// `default` exists, `remoteurl` and `upstreams` are not mixed.
    pub fn validate(&self) -> Result<(), String> {
        if self.remoteurl.is_some() && !self.upstreams.is_empty() {
            return Err("use either remoteurl or upstreams, not both".into());
        }
        if let Some(u) = &self.remoteurl {
            check_url(u)?;
        }
        if self.password.is_some() && self.username.is_none() {
            return Err("password without username".into());
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.upstreams {
            check_url(&u.url)?;
            if !valid_name(&u.name) {
                return Err(format!(
                    "upstreams: name {:?} is not a registry host name (lower case, e.g. docker.io)",
                    u.name
                ));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(format!("upstreams: name {:?} appears twice", u.name));
            }
            if u.password.is_some() && u.username.is_none() {
                return Err(format!("upstreams.{}: password without username", u.name));
            }
        }
        if let Some(d) = &self.default
            && !seen.contains(d.as_str())
        {
            return Err(format!("default {d:?} is not one of the upstreams"));
        }
        Ok(())
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.parse::<http::Uri>().is_ok_and(|p| p.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(format!("{u:?} is not an http(s) URL"))
    }
}

/// A registry host name usable as a repository path component.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}
