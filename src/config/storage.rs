//! `storage`: the driver section and storage behaviour.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `storage`. At most one driver section (`filesystem`, `inmemory`,
/// `ipfs`, `s3`) may be present; with none, disco uses its default store
/// under the data directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Local directory driver.
    pub filesystem: Option<FilesystemConfig>,
    /// Memory driver (everything lost on exit).
    pub inmemory: Option<yaml_serde::Value>,
    /// IPFS storage (Kubo nodes or the embedded node), see the README.
    /// Also the default when no driver section is present.
    pub ipfs: Option<crate::storage::ipfs::IpfsStorageConfig>,
    /// S3-compatible object storage, configured as Distribution's `s3`.
    pub s3: Option<yaml_serde::Value>,
    /// Deletes.
    pub delete: DeleteConfig,
    /// Maintenance tasks.
    pub maintenance: MaintenanceConfig,
    /// Blob download redirects.
    pub redirect: RedirectConfig,
    /// Distribution's blob-descriptor cache; accepted and ignored (disco
    /// keeps its own bounded in-memory caches).
    pub cache: Option<yaml_serde::Value>,
}

impl StorageConfig {
    /// Names of the driver sections present.
    pub fn drivers(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.filesystem.is_some() {
            v.push("filesystem");
        }
        if self.inmemory.is_some() {
            v.push("inmemory");
        }
        if self.ipfs.is_some() {
            v.push("ipfs");
        }
        if self.s3.is_some() {
            v.push("s3");
        }
        v
    }
}

/// `storage.filesystem`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FilesystemConfig {
    /// Root directory. Default `/var/lib/registry` (Distribution's default).
    pub rootdirectory: PathBuf,
    /// Distribution's thread limit; accepted, unused (disco bounds its own
    /// blocking pool). Default 100.
    pub maxthreads: u32,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        Self {
            rootdirectory: PathBuf::from("/var/lib/registry"),
            maxthreads: 100,
        }
    }
}

/// `storage.delete`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeleteConfig {
    /// Allow deleting blobs and manifests. Default false.
    pub enabled: bool,
}

/// `storage.maintenance`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MaintenanceConfig {
    /// Purging of abandoned uploads.
    pub uploadpurging: UploadPurgingConfig,
    /// Read-only mode.
    pub readonly: ReadOnlyConfig,
}

/// `storage.maintenance.uploadpurging`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UploadPurgingConfig {
    /// Default true.
    pub enabled: bool,
    /// Uploads older than this are purged. Default `168h`.
    #[serde(deserialize_with = "duration")]
    pub age: Duration,
    /// How often to purge. Default `24h`.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Only log what would be purged. Default false.
    pub dryrun: bool,
}

impl Default for UploadPurgingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dryrun: false,
        }
    }
}

/// `storage.maintenance.readonly`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReadOnlyConfig {
    /// Refuse every write with 405. Default false.
    pub enabled: bool,
}

/// `storage.redirect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedirectConfig {
    /// Never redirect blob downloads, even when the driver can. Default false.
    pub disable: bool,
}
