//! Registry storage logic: blobs, uploads, manifests, tags, catalog and
//! referrers, in CNCF Distribution's layout ([`paths`]) over a path-based
//! [`StorageDriver`](crate::storage::StorageDriver).

pub mod blobs;
pub mod cache;
pub mod catalog;
pub mod digest;
pub mod error;
pub mod gc;
pub mod hooks;
pub mod manifest;
pub mod manifests;
pub mod name;
pub mod paths;
pub mod purge;
pub mod referrers;
pub mod tags;
pub mod uploads;

use std::sync::Arc;

use bytes::Bytes;

pub use digest::{Algorithm, Digest};
pub use error::{ErrorCode, RegistryError, Result};
pub use name::RepoName;

use crate::storage::{Driver, StorageError};

/// Behaviour switches of the registry (from `storage.delete`,
/// `storage.redirect` and limits).
#[derive(Debug, Clone)]
pub struct Options {
    /// Allow `DELETE` of blobs and manifests (`storage.delete.enabled`).
    pub delete_enabled: bool,
    /// Redirect blob GETs to the driver's URL when it has one
    /// (`!storage.redirect.disable`).
    pub redirect: bool,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_size: usize,
    /// Bytes of manifests kept in the in-memory cache.
    pub manifest_cache_bytes: usize,
    /// Refuse every write (`storage.maintenance.readonly.enabled`).
    pub readonly: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            delete_enabled: false,
            redirect: true,
            max_manifest_size: 4 * 1024 * 1024,
            manifest_cache_bytes: 64 * 1024 * 1024,
            readonly: false,
        }
    }
}

/// The registry: all repository operations over one storage driver.
pub struct Registry {
    driver: Driver,
    options: Options,
    manifests: cache::ManifestCache,
    uploads: uploads::UploadLocks,
    hooks: Vec<Arc<dyn hooks::RegistryHook>>,
    gc: gc::state::GcState,
}

impl Registry {
    /// A registry over `driver`.
    pub fn new(driver: Driver, options: Options) -> Self {
        let manifests = cache::ManifestCache::new(options.manifest_cache_bytes);
        Self {
            driver,
            options,
            manifests,
            uploads: uploads::UploadLocks::default(),
            hooks: Vec::new(),
            gc: gc::state::GcState::default(),
        }
    }

    /// Adds a hook called on pushes (publishing, access rules).
    pub fn add_hook(&mut self, hook: Arc<dyn hooks::RegistryHook>) {
        self.hooks.push(hook);
    }

    /// The storage driver.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Garbage collection bookkeeping.
    pub fn gc_state(&self) -> &gc::state::GcState {
        &self.gc
    }

    /// Reads a link file and parses the digest it holds.
    async fn read_link(&self, path: &str) -> std::result::Result<Option<Digest>, StorageError> {
        match self.driver.get_content(path).await {
            Ok(data) => Ok(std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse().ok())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a link file holding `digest`.
    async fn write_link(&self, path: &str, digest: &Digest) -> Result<()> {
        self.gc.record([digest]);
        self.driver
            .put_content(path, Bytes::from(digest.to_string()))
            .await?;
        Ok(())
    }

    /// True if the repository has any content (layers, manifests or uploads).
    pub async fn repo_exists(&self, name: &RepoName) -> Result<bool> {
        match self.driver.stat(&paths::repo(name)).await {
            Ok(info) => Ok(info.is_dir),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Fails with `DENIED` if a hook refuses writes to `name`.
    pub fn check_push(&self, name: &RepoName) -> Result<()> {
        if self.options.readonly {
            return Err(RegistryError::unsupported(
                "the registry is in read-only mode",
            ));
        }
        for h in &self.hooks {
            h.check_push(name)?;
        }
        Ok(())
    }
}

/// RFC 3339 timestamp of now, as Distribution writes `startedat`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
