//! The sweep: deletes what the plan names, in an order a crash cannot
//! turn into a loss (tags, then manifests, then content-addressed
//! repositories, then blobs: each step only removes references to what a
//! later step deletes). Each deletion takes the fence exclusively and
//! re-checks its candidate first: anything linked or pushed since the
//! collection started, or within the grace period, stays.

use super::mark::Plan;
use crate::registry::manifest;
use crate::registry::{Digest, Registry, RepoName, paths};
use crate::storage::parent;

/// What the sweep deleted.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    /// Tags deleted by retention.
    pub tags: Vec<(RepoName, String, Digest)>,
    /// Manifests deleted.
    pub manifests: Vec<(RepoName, Digest)>,
    /// Content-addressed repositories deleted.
    pub repositories: Vec<RepoName>,
    /// Blobs deleted.
    pub blobs: Vec<(Digest, u64)>,
    /// Candidates the re-check kept.
    pub skipped: usize,
    /// Deletions that failed (logged).
    pub errors: usize,
}

impl Registry {
    async fn gc_delete(&self, path: &str, errors: &mut usize) -> bool {
        match self.driver.delete(path).await {
            Ok(()) => true,
            Err(e) if e.is_not_found() => true,
            Err(e) => {
                tracing::warn!(path, error = %e, "gc: delete failed");
                *errors += 1;
                false
            }
        }
    }

    /// Deletes what `plan` names; blobs only if `blobs_allowed` (no clone
    /// ran during the collection).
    pub(crate) async fn gc_sweep(&self, plan: &Plan, blobs_allowed: bool) -> Swept {
        let mut out = Swept::default();
        let state = &self.gc;
        for (name, tag, d) in &plan.tags {
            let _w = state.fence.write().await;
            let current = self
                .read_link(&paths::tag_current_link(name, tag))
                .await
                .ok()
                .flatten();
            if current.as_ref() != Some(d) || state.protected(d) {
                out.skipped += 1;
                continue;
            }
            if self
                .gc_delete(&paths::tag_dir(name, tag), &mut out.errors)
                .await
            {
                tracing::info!(repository = %name, tag, "gc: deleted tag (retention)");
                out.tags.push((name.clone(), tag.clone(), d.clone()));
            }
        }
        for (name, d, history) in &plan.manifests {
            let subject = match self.load_manifest(d).await {
                Ok(m) => manifest::parse(&m.bytes, Some(&m.media_type))
                    .ok()
                    .and_then(|p| p.subject)
                    .map(|s| s.digest),
                Err(_) => None,
            };
            let _w = state.fence.write().await;
            if state.protected(d) {
                out.skipped += 1;
                continue;
            }
            // History entries first, the revision last: an interrupted
            // delete leaves a revision that the next run deletes again.
            for tag in history {
                let link = paths::tag_index_link(name, tag, d);
                self.gc_delete(parent(&link), &mut out.errors).await;
            }
            if let Some(s) = subject {
                let link = paths::referrer_link(name, &s, d);
                self.gc_delete(parent(&link), &mut out.errors).await;
            }
            let link = paths::revision_link(name, d);
            if self.gc_delete(parent(&link), &mut out.errors).await {
                tracing::info!(repository = %name, digest = %d, "gc: deleted untagged manifest");
                out.manifests.push((name.clone(), d.clone()));
            }
        }
        for (name, root) in &plan.repositories {
            let _w = state.fence.write().await;
            if root.as_ref().is_some_and(|r| state.protected(r)) {
                out.skipped += 1;
                continue;
            }
            if self.gc_delete(&paths::repo(name), &mut out.errors).await {
                tracing::info!(repository = %name, "gc: deleted content-addressed repository no named repository holds");
                out.repositories.push(name.clone());
            }
        }
        if !blobs_allowed {
            if !plan.blobs.is_empty() {
                tracing::info!(
                    blobs = plan.blobs.len(),
                    "gc: clones ran during the collection; unreferenced blobs are left to the next run"
                );
            }
            out.skipped += plan.blobs.len();
            return out;
        }
        for (d, size) in &plan.blobs {
            let _w = state.fence.write().await;
            if state.protected(d) {
                out.skipped += 1;
                continue;
            }
            if self.gc_delete(&paths::blob_dir(d), &mut out.errors).await {
                self.manifests.remove(d);
                let memo = format!(
                    "{}/{}/{}",
                    crate::disco::CIDS,
                    d.algorithm().as_str(),
                    d.hex()
                );
                let _ = self.driver.delete(&memo).await;
                out.blobs.push((d.clone(), *size));
            }
        }
        if !out.blobs.is_empty() {
            tracing::info!(blobs = out.blobs.len(), "gc: deleted unreferenced blobs");
        }
        out
    }
}
