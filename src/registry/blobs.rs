//! Blobs: content-addressed data under `blobs/`, linked into repositories
//! by `_layers` links.

use bytes::Bytes;
use futures::StreamExt;

use super::digest::Digest;
use super::error::{RegistryError, Result};
use super::name::RepoName;
use super::{Registry, paths};
use crate::storage::{ByteStream, StorageError};

impl Registry {
    /// Size of a blob linked into `name` (or that hooks make available to
    /// it), or `BLOB_UNKNOWN`.
    pub async fn stat_blob(&self, name: &RepoName, digest: &Digest) -> Result<u64> {
        if !self.is_linked(name, digest).await? && !self.hooks_provide(name, digest).await? {
            return Err(RegistryError::blob_unknown(digest));
        }
        self.stat_global_blob(digest)
            .await?
            .ok_or_else(|| RegistryError::blob_unknown(digest))
    }

    /// True if `name` has a link to `digest` (the blob itself may be
    /// missing).
    pub async fn is_linked(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&paths::layer_link(name, digest))
            .await?
            .as_ref()
            == Some(digest))
    }

    /// True if a hook made the unlinked blob `digest` available to `name`.
    async fn hooks_provide(&self, name: &RepoName, digest: &Digest) -> Result<bool> {
        for hook in &self.hooks {
            if hook.blob_missing(self, name, digest).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Size of a blob in the global store, whatever repository links it.
    pub async fn stat_global_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.driver.stat(&paths::blob_data(digest)).await {
            Ok(info) if !info.is_dir => Ok(Some(info.size)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams a linked blob from `offset` (which the caller checked against
    /// the size).
    pub async fn open_blob(&self, digest: &Digest, offset: u64) -> Result<ByteStream> {
        self.driver
            .reader(&paths::blob_data(digest), offset)
            .await
            .map_err(|e| match e {
                StorageError::PathNotFound(_) => RegistryError::blob_unknown(digest),
                e => e.into(),
            })
    }

    /// Reads a whole (small) blob, e.g. a config.
    pub async fn read_blob(&self, digest: &Digest) -> Result<Bytes> {
        self.driver
            .get_content(&paths::blob_data(digest))
            .await
            .map_err(|e| match e {
                StorageError::PathNotFound(_) => RegistryError::blob_unknown(digest),
                e => e.into(),
            })
    }

    /// A URL to redirect blob downloads to, when enabled and the driver
    /// has one.
    pub async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        if !self.options.redirect {
            return Ok(None);
        }
        Ok(self.driver.redirect_url(&paths::blob_data(digest)).await?)
    }

    /// Links an existing blob into `name`.
    pub async fn link_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        self.write_link(&paths::layer_link(name, digest), digest)
            .await
    }

    /// Cross-repository mount: links `digest` into `name` if it is linked in
    /// `from` (or, with no `from`, if it exists anywhere). Returns the size
    /// when mounted.
    pub async fn mount_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>> {
        let _fence = self.gc.fence.read().await;
        self.gc.record([digest]);
        let size = match from {
            Some(from) => match self.stat_blob(from, digest).await {
                Ok(size) => Some(size),
                Err(e) if e.code == super::ErrorCode::BlobUnknown => None,
                Err(e) => return Err(e),
            },
            None => self.stat_global_blob(digest).await?,
        };
        if size.is_some() {
            self.link_blob(name, digest).await?;
        }
        Ok(size)
    }

    /// Unlinks a blob from `name` (the data stays for other repositories
    /// until garbage collection).
    pub async fn delete_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(RegistryError::unsupported(
                "deletes are disabled (storage.delete.enabled)",
            ));
        }
        self.check_push(name)?;
        self.stat_blob(name, digest).await?;
        let link = paths::layer_link(name, digest);
        let dir = crate::storage::parent(&link).to_string();
        match self.driver.delete(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Err(RegistryError::blob_unknown(digest)),
            Err(e) => Err(e.into()),
        }
    }

    /// Hashes a stored blob and checks it against its digest.
    pub async fn verify_blob(&self, digest: &Digest) -> Result<bool> {
        let mut s = self.open_blob(digest, 0).await?;
        let mut h = super::digest::Digester::new(digest.algorithm());
        while let Some(chunk) = s.next().await {
            let chunk = chunk
                .map_err(|e| RegistryError::internal(format!("reading blob {digest}: {e}")))?;
            h.update(&chunk);
        }
        Ok(&h.finish() == digest)
    }
}
