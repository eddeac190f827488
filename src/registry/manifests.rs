//! Manifests: push with reference checks, pull by tag or digest, delete.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::cache::StoredManifest;
use super::digest::Digest;
use super::error::{ErrorCode, RegistryError, Result};
use super::manifest::{self, Kind, Manifest};
use super::name::{RepoName, valid_tag};
use super::{Registry, paths};

/// A manifest reference from a URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference: anything with `:` must be a valid digest
    /// (`DIGEST_INVALID` otherwise); anything else must be a valid tag
    /// (`None` otherwise, which callers answer as they see fit).
    pub fn parse(s: &str) -> Result<Option<Self>> {
        if s.contains(':') {
            return Ok(Some(Reference::Digest(s.parse()?)));
        }
        Ok(valid_tag(s).then(|| Reference::Tag(s.to_string())))
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Outcome of a manifest push.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Subject digest, if the manifest has one (`OCI-Subject` header).
    pub subject: Option<Digest>,
    /// Extra response headers from hooks (e.g. `Disco-Cid`).
    pub headers: Vec<(String, String)>,
}

/// The media type of stored manifest bytes, without full validation (a
/// Distribution store may hold types disco would not accept on push).
pub fn stored_media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        schema_version: Option<i64>,
        manifests: Option<serde_json::Value>,
        signatures: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(mt),
            ..
        }) => mt,
        Ok(Probe {
            schema_version: Some(1),
            signatures: Some(_),
            ..
        }) => manifest::DOCKER_SCHEMA1_SIGNED.into(),
        Ok(Probe {
            schema_version: Some(1),
            ..
        }) => manifest::DOCKER_SCHEMA1.into(),
        Ok(Probe {
            manifests: Some(_), ..
        }) => manifest::OCI_INDEX.into(),
        _ => manifest::OCI_MANIFEST.into(),
    }
}

impl Registry {
    /// Stores a manifest under `reference` (and the extra `tags`), after
    /// checking that everything it references exists in `name`.
    pub async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[String],
    ) -> Result<PushedManifest> {
        self.check_push(name)?;
        if body.len() > self.options.max_manifest_size {
            return Err(RegistryError::manifest_invalid(format!(
                "manifest is {} bytes; the limit is {}",
                body.len(),
                self.options.max_manifest_size
            ))
            .with_status(413));
        }
        let parsed = manifest::parse(&body, content_type)?;
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = Digest::of(d.algorithm(), &body);
                if &actual != d {
                    return Err(RegistryError::digest_invalid(format!(
                        "manifest digest {actual} does not match the reference {d}"
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256(&body),
        };
        let mut tags: Vec<String> = Vec::new();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        for t in extra_tags {
            if !valid_tag(t) {
                return Err(RegistryError::manifest_invalid(format!(
                    "invalid tag {t:?}"
                )));
            }
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        // Held until the last link: a collection deletes nothing between
        // the reference check and the links (see `gc`).
        let fence = self.gc.fence.read().await;
        let referenced = parsed
            .config
            .iter()
            .chain(&parsed.layers)
            .chain(&parsed.manifests)
            .map(|d| &d.digest);
        self.gc.record(std::iter::once(&digest).chain(referenced));
        self.check_references(name, &parsed).await?;

        let data_path = paths::blob_data(&digest);
        if self.stat_global_blob(&digest).await?.is_none() {
            self.driver.put_content(&data_path, body.clone()).await?;
        }
        self.write_link(&paths::revision_link(name, &digest), &digest)
            .await?;
        if let Some(subject) = &parsed.subject {
            self.write_link(
                &paths::referrer_link(name, &subject.digest, &digest),
                &digest,
            )
            .await?;
        }
        for tag in &tags {
            self.tag_manifest(name, tag, &digest).await?;
        }
        drop(fence);
        self.manifests.insert(Arc::new(StoredManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.to_string(),
            bytes: body,
        }));
        let mut headers = Vec::new();
        for hook in &self.hooks {
            headers.extend(
                hook.manifest_pushed(self, name, &digest, &parsed, &tags)
                    .await?,
            );
        }
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
            headers,
        })
    }

    /// Stores a manifest a pull-through mirror fetched and verified against
    /// `digest` in `name` (tagged `tag`, if any): like a push, but neither
    /// push checks nor hooks run, and the blobs it references may still be
    /// arriving (the mirror fetches them as they are pulled).
    pub async fn store_fetched_manifest(
        &self,
        name: &RepoName,
        digest: &Digest,
        body: Bytes,
        tag: Option<&str>,
    ) -> Result<Arc<StoredManifest>> {
        if &Digest::of(digest.algorithm(), &body) != digest {
            return Err(RegistryError::digest_invalid(format!(
                "fetched manifest does not match its digest {digest}"
            )));
        }
        let parsed = manifest::parse(&body, None)?;
        if self.stat_global_blob(digest).await?.is_none() {
            self.driver
                .put_content(&paths::blob_data(digest), body.clone())
                .await?;
        }
        self.write_link(&paths::revision_link(name, digest), digest)
            .await?;
        if let Some(subject) = &parsed.subject {
            self.write_link(&paths::referrer_link(name, &subject.digest, digest), digest)
                .await?;
        }
        if let Some(t) = tag {
            self.tag_manifest(name, t, digest).await?;
        }
        let m = Arc::new(StoredManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.to_string(),
            bytes: body,
        });
        self.manifests.insert(m.clone());
        Ok(m)
    }

    /// Points `tag` at `digest`.
    pub async fn tag_manifest(&self, name: &RepoName, tag: &str, digest: &Digest) -> Result<()> {
        // `current` first: a crash in between leaves a resolvable tag with a
        // missing history entry, never a tag without a target.
        self.write_link(&paths::tag_current_link(name, tag), digest)
            .await?;
        self.write_link(&paths::tag_index_link(name, tag, digest), digest)
            .await
    }

    /// Checks that the blobs and child manifests of `m` exist in `name`.
    async fn check_references(&self, name: &RepoName, m: &Manifest) -> Result<()> {
        let mut wanted: Vec<(Digest, bool)> = Vec::new();
        match m.kind {
            Kind::Image => {
                if let Some(c) = &m.config {
                    wanted.push((c.digest.clone(), false));
                }
                for l in &m.layers {
                    // Non-distributable layers are fetched from their URLs.
                    if l.urls.is_empty() {
                        wanted.push((l.digest.clone(), false));
                    }
                }
            }
            Kind::Index => wanted.extend(m.manifests.iter().map(|d| (d.digest.clone(), true))),
        }
        futures::stream::iter(wanted)
            .map(|(d, is_manifest)| async move {
                let found = if is_manifest {
                    self.read_link(&paths::revision_link(name, &d))
                        .await?
                        .as_ref()
                        == Some(&d)
                } else {
                    match self.stat_blob(name, &d).await {
                        Ok(_) => true,
                        Err(e) if e.code == ErrorCode::BlobUnknown => false,
                        Err(e) => return Err(e),
                    }
                };
                if found {
                    Ok(())
                } else {
                    let what = if is_manifest { "manifest" } else { "blob" };
                    Err(RegistryError::new(
                        ErrorCode::ManifestBlobUnknown,
                        format!(
                            "{what} {d} referenced by the manifest is unknown to repository {name}"
                        ),
                    )
                    .with_detail(serde_json::json!({ "digest": d.to_string() })))
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The digest `reference` names in `name`, if any.
    pub async fn resolve(&self, name: &RepoName, reference: &Reference) -> Result<Option<Digest>> {
        Ok(match reference {
            Reference::Tag(t) => self.read_link(&paths::tag_current_link(name, t)).await?,
            Reference::Digest(d) => (self
                .read_link(&paths::revision_link(name, d))
                .await?
                .as_ref()
                == Some(d))
            .then(|| d.clone()),
        })
    }

    /// Resolves `reference`, asking hooks to materialise it if missing.
    async fn resolve_or_fetch(&self, name: &RepoName, reference: &Reference) -> Result<Digest> {
        if let Some(d) = self.resolve(name, reference).await? {
            return Ok(d);
        }
        for hook in &self.hooks {
            if let Some(d) = hook.manifest_missing(self, name, reference).await? {
                return Ok(d);
            }
        }
        Err(RegistryError::manifest_unknown(reference))
    }

    /// The manifest `reference` names in `name`.
    pub async fn get_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<Arc<StoredManifest>> {
        let digest = self.resolve_or_fetch(name, reference).await?;
        self.load_manifest(&digest).await
    }

    /// Loads manifest bytes by digest (cache, else storage, verified).
    pub async fn load_manifest(&self, digest: &Digest) -> Result<Arc<StoredManifest>> {
        if let Some(m) = self.manifests.get(digest) {
            return Ok(m);
        }
        let bytes = match self.read_blob(digest).await {
            Ok(b) => b,
            Err(e) if e.code == ErrorCode::BlobUnknown => {
                return Err(RegistryError::manifest_unknown(digest));
            }
            Err(e) => return Err(e),
        };
        if &Digest::of(digest.algorithm(), &bytes) != digest {
            return Err(RegistryError::internal(format!(
                "stored manifest {digest} is corrupt (digest mismatch)"
            )));
        }
        let m = Arc::new(StoredManifest {
            digest: digest.clone(),
            media_type: stored_media_type(&bytes),
            bytes,
        });
        self.manifests.insert(m.clone());
        Ok(m)
    }

    /// Deletes a tag (by tag) or a manifest with every tag pointing at it
    /// (by digest).
    pub async fn delete_manifest(&self, name: &RepoName, reference: &Reference) -> Result<()> {
        if !self.options.delete_enabled {
            return Err(RegistryError::unsupported(
                "deletes are disabled (storage.delete.enabled)",
            ));
        }
        self.check_push(name)?;
        match reference {
            Reference::Tag(tag) => {
                if self
                    .read_link(&paths::tag_current_link(name, tag))
                    .await?
                    .is_none()
                {
                    return Err(RegistryError::manifest_unknown(reference));
                }
                self.driver.delete(&paths::tag_dir(name, tag)).await?;
            }
            Reference::Digest(d) => {
                if self.resolve(name, reference).await?.is_none() {
                    return Err(RegistryError::manifest_unknown(reference));
                }
                let subject = match self.load_manifest(d).await {
                    Ok(m) => manifest::parse(&m.bytes, Some(&m.media_type))
                        .ok()
                        .and_then(|p| p.subject),
                    Err(_) => None,
                };
                let link = paths::revision_link(name, d);
                self.driver.delete(crate::storage::parent(&link)).await?;
                for tag in self.list_tags(name).await.unwrap_or_default() {
                    if self
                        .read_link(&paths::tag_current_link(name, &tag))
                        .await?
                        .as_ref()
                        == Some(d)
                    {
                        self.driver.delete(&paths::tag_dir(name, &tag)).await?;
                    }
                }
                if let Some(s) = subject {
                    let link = paths::referrer_link(name, &s.digest, d);
                    match self.driver.delete(crate::storage::parent(&link)).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }
}
