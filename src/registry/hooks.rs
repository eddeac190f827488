//! Extension points the content-addressed image layer (`crate::disco`)
//! plugs into: access rules on push, publishing after a manifest push,
//! and materialising repositories that are not present locally.

use async_trait::async_trait;

use super::Registry;
use super::digest::Digest;
use super::error::Result;
use super::manifest::Manifest;
use super::manifests::Reference;
use super::name::RepoName;

/// Called by the registry around pushes and pulls. Every method has a
/// do-nothing default.
#[async_trait]
pub trait RegistryHook: Send + Sync + 'static {
    /// Refuses writes to a repository (`DENIED`), e.g. pull-only names.
    fn check_push(&self, _name: &RepoName) -> Result<()> {
        Ok(())
    }

    /// Runs after a manifest is stored and linked; returns extra response
    /// headers for the PUT. An error fails the push.
    async fn manifest_pushed(
        &self,
        _registry: &Registry,
        _name: &RepoName,
        _digest: &Digest,
        _manifest: &Manifest,
        _tags: &[String],
    ) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// Runs when a manifest `reference` is not found in `name`; returns the
    /// digest it names if the hook made that manifest available in the
    /// global blob store (verified), e.g. early in a clone by CID whose
    /// other blobs are still arriving.
    async fn manifest_missing(
        &self,
        _registry: &Registry,
        _name: &RepoName,
        _reference: &Reference,
    ) -> Result<Option<Digest>> {
        Ok(None)
    }

    /// Runs when the repository `name` does not exist; returns true if the
    /// hook made it available whole (e.g. cloned it by CID), so the lookup
    /// is retried.
    async fn repository_missing(&self, _registry: &Registry, _name: &RepoName) -> Result<bool> {
        Ok(false)
    }

    /// Runs when blob `digest` is not linked into `name`; returns true if
    /// `name` may serve it from the global blob store (verified), e.g. a
    /// clone by CID in progress fetched it, or linked it meanwhile.
    async fn blob_missing(
        &self,
        _registry: &Registry,
        _name: &RepoName,
        _digest: &Digest,
    ) -> Result<bool> {
        Ok(false)
    }
}
