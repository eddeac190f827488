//! Which images a caller may read under their content-addressed names.
//!
//! An image pushed to `team-b/app` is also served as its digest repository
//! (`<manifest hex>`) and its CID repository. Those names carry no owner,
//! so a rule on `team-b/*` must follow the image there: a content-addressed
//! repository may be read by whoever may read some named repository
//! holding the same manifest (or whom a rule names it for directly).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::disco::names::{NameKind, classify, is_digest_hex};
use crate::registry::manifests::Reference;
use crate::registry::{Algorithm, Digest, Registry, RepoName, paths};

/// How long the repository list is reused between decisions.
const LIST_TTL: Duration = Duration::from_secs(5);

/// Answers ownership questions from the registry's own layout.
pub struct Holdings {
    registry: Arc<Registry>,
    repos: Mutex<Option<(Instant, Arc<Vec<String>>)>>,
}

impl Holdings {
    /// Over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            repos: Mutex::new(None),
        }
    }

    /// The image a content-addressed repository name stands for: the digest
    /// of a digest repository; the `latest` manifest of a CID repository
    /// present here. `None` for other names, or a CID not held locally.
    pub async fn image_of(&self, name: &RepoName) -> Option<Digest> {
        match classify(name) {
            NameKind::Digest => digest_of_hex(name.as_str()),
            NameKind::Cid { .. } => self
                .registry
                .resolve(name, &Reference::Tag("latest".into()))
                .await
                .ok()
                .flatten(),
            NameKind::Normal => None,
        }
    }

    /// The repository list, reused for [`LIST_TTL`] unless `fresh`.
    async fn repositories(&self, fresh: bool) -> Arc<Vec<String>> {
        if !fresh
            && let Some((at, list)) = self.repos.lock().as_ref()
            && at.elapsed() < LIST_TTL
        {
            return list.clone();
        }
        let list = Arc::new(self.registry.list_repositories().await.unwrap_or_default());
        *self.repos.lock() = Some((Instant::now(), list.clone()));
        list
    }

    /// True if a named (not content-addressed) repository that `readable`
    /// accepts holds manifest `digest`. A negative answer from a reused
    /// repository list is checked again on a fresh one (the image may have
    /// just been pushed).
    pub async fn held_in_readable(
        &self,
        digest: &Digest,
        readable: &(dyn Fn(&str) -> bool + Sync),
    ) -> bool {
        self.held_in(digest, readable, false).await || self.held_in(digest, readable, true).await
    }

    async fn held_in(
        &self,
        digest: &Digest,
        readable: &(dyn Fn(&str) -> bool + Sync),
        fresh: bool,
    ) -> bool {
        for repo in self.repositories(fresh).await.iter() {
            let Ok(name) = RepoName::parse(repo) else {
                continue;
            };
            if classify(&name) != NameKind::Normal || !readable(repo) {
                continue;
            }
            if let Ok(Some(_)) = self
                .registry
                .resolve(&name, &Reference::Digest(digest.clone()))
                .await
            {
                return true;
            }
        }
        false
    }

    /// Every manifest held by the named repositories `readable` accepts
    /// (for filtering a whole catalog with one listing per repository).
    pub async fn readable_images(
        &self,
        readable: &(dyn Fn(&str) -> bool + Sync),
    ) -> HashSet<Digest> {
        let mut out = HashSet::new();
        for repo in self.repositories(true).await.iter() {
            let Ok(name) = RepoName::parse(repo) else {
                continue;
            };
            if classify(&name) != NameKind::Normal || !readable(repo) {
                continue;
            }
            let driver = self.registry.driver();
            let Ok(algos) = driver.list(&paths::revisions_dir(&name)).await else {
                continue;
            };
            for algo_dir in algos {
                let Ok(revs) = driver.list(&algo_dir).await else {
                    continue;
                };
                for rev in revs {
                    let (Some(algo), Some(hex)) =
                        (algo_dir.rsplit('/').next(), rev.rsplit('/').next())
                    else {
                        continue;
                    };
                    if let Ok(d) = format!("{algo}:{hex}").parse::<Digest>() {
                        out.insert(d);
                    }
                }
            }
        }
        out
    }
}

/// The digest a digest repository's name (64 or 128 hex) stands for.
pub fn digest_of_hex(hex: &str) -> Option<Digest> {
    if !is_digest_hex(hex) {
        return None;
    }
    let algo = if hex.len() == 64 {
        Algorithm::Sha256
    } else {
        Algorithm::Sha512
    };
    format!("{}:{hex}", algo.as_str()).parse().ok()
}
