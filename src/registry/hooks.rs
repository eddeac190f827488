//! Extension points the content-addressed image layer (`crate::disco`)
//! plugs into: access rules on push, publishing after a manifest push,
//! and materialising repositories that are not present locally.

use async_trait::async_trait;

use super::Registry;
use super::digest::Digest;
use super::error::Result;
use super::manifest::Manifest;
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

    /// Runs when a manifest `reference` is not found in `name`; returns true
    /// if it made the repository available (e.g. cloned it by CID), so the
    /// lookup is retried.
    async fn manifest_missing(
        &self,
        _registry: &Registry,
        _name: &RepoName,
        _reference: &str,
    ) -> Result<bool> {
        Ok(false)
    }
}
