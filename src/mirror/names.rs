//! Which repository names are mirrored, and the one mapping from a
//! request (path name plus containerd's `?ns=`) to the local name disco
//! stores and authorises it under.

use crate::disco::names::{NameKind, classify};
use crate::registry::{RegistryError, RepoName};

/// An upstream's names, as the mapping needs them.
#[derive(Debug, Clone)]
pub struct UpstreamName {
    /// Registry host name (`docker.io`).
    pub name: String,
    /// Docker Hub: single-component names get `library/`.
    pub docker_hub: bool,
}

/// The name mapping of the configured upstreams.
#[derive(Debug, Clone, Default)]
pub struct NameMap {
    /// Every upstream, by index.
    pub upstreams: Vec<UpstreamName>,
    /// The upstream of requests without `ns` (plain local names).
    pub default: Option<usize>,
}

/// A mirrored local name: which upstream, and the name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Index of the upstream.
    pub upstream: usize,
    /// The repository name upstream (`library/busybox`).
    pub remote: String,
}

/// True for Docker Hub's registry names.
pub fn is_docker_hub(name: &str, url: &str) -> bool {
    name == "docker.io" || url.contains("registry-1.docker.io") || url.contains("index.docker.io")
}

impl NameMap {
    /// The local name a request for `name` with `ns` (containerd's
    /// `?ns=<registry>`) is served and authorised as: `<ns>/<name>` when
    /// `ns` names a configured upstream other than the default, else
    /// `name` unchanged.
    pub fn local_name(&self, name: &RepoName, ns: Option<&str>) -> Result<RepoName, RegistryError> {
        let Some(ns) = ns else {
            return Ok(name.clone());
        };
        let Some(i) = self.upstreams.iter().position(|u| u.name == ns) else {
            return Ok(name.clone());
        };
        if self.default == Some(i) {
            return Ok(name.clone());
        }
        RepoName::parse(&format!("{ns}/{name}"))
    }

    /// The upstream a local name is mirrored from, if any: names starting
    /// with an upstream's registry name, else (with a default upstream)
    /// every name. disco's content-addressed names are never mirrored.
    pub fn target(&self, local: &RepoName) -> Option<Target> {
        if classify(local) != NameKind::Normal {
            return None;
        }
        let s = local.as_str();
        for (i, u) in self.upstreams.iter().enumerate() {
            if self.default == Some(i) {
                continue;
            }
            if let Some(rest) = s.strip_prefix(&u.name).and_then(|r| r.strip_prefix('/')) {
                return Some(Target {
                    upstream: i,
                    remote: remote_name(u, rest),
                });
            }
        }
        let i = self.default?;
        Some(Target {
            upstream: i,
            remote: remote_name(&self.upstreams[i], s),
        })
    }
}

/// Docker Hub keeps official images under `library/`.
fn remote_name(u: &UpstreamName, name: &str) -> String {
    if u.docker_hub && !name.contains('/') {
        format!("library/{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(default: bool) -> NameMap {
        NameMap {
            upstreams: vec![
                UpstreamName {
                    name: "docker.io".into(),
                    docker_hub: true,
                },
                UpstreamName {
                    name: "ghcr.io".into(),
                    docker_hub: false,
                },
            ],
            default: default.then_some(0),
        }
    }

    fn n(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn maps_names() {
        let m = map(false);
        assert_eq!(
            m.local_name(&n("library/busybox"), Some("docker.io"))
                .unwrap()
                .as_str(),
            "docker.io/library/busybox"
        );
        assert_eq!(
            m.local_name(&n("a/b"), Some("quay.io")).unwrap().as_str(),
            "a/b"
        );
        assert_eq!(m.local_name(&n("a/b"), None).unwrap().as_str(), "a/b");
        assert_eq!(
            m.target(&n("docker.io/busybox")),
            Some(Target {
                upstream: 0,
                remote: "library/busybox".into()
            })
        );
        assert_eq!(
            m.target(&n("ghcr.io/o/r")),
            Some(Target {
                upstream: 1,
                remote: "o/r".into()
            })
        );
        assert_eq!(m.target(&n("busybox")), None);
        assert_eq!(m.target(&n(&"a".repeat(64))), None);

        let d = map(true);
        assert_eq!(
            d.local_name(&n("library/busybox"), Some("docker.io"))
                .unwrap()
                .as_str(),
            "library/busybox"
        );
        assert_eq!(
            d.target(&n("busybox")),
            Some(Target {
                upstream: 0,
                remote: "library/busybox".into()
            })
        );
        assert_eq!(
            d.target(&n("ghcr.io/o/r")),
            Some(Target {
                upstream: 1,
                remote: "o/r".into()
            })
        );
        assert_eq!(d.target(&n(&"b".repeat(64))), None);
    }
}
