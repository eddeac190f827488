//! Manifests of mirrored repositories: tags resolved upstream once per
//! TTL, images taken from peers when one has them, else fetched upstream,
//! verified, stored, completed in the background and published.

use futures::{StreamExt, TryStreamExt, stream};

use super::error::MirrorError;
use super::{Mirror, Target, peers};
use crate::registry::manifest::{self, Kind, Manifest};
use crate::registry::manifests::Reference;
use crate::registry::{Digest, ErrorCode, RegistryError, RepoName};

/// Index nesting followed when linking an image cloned from peers.
const MAX_DEPTH: usize = 8;
/// Blobs one background completion fetches at once.
const COMPLETE_CONCURRENCY: usize = 3;

/// How a mirrored manifest request can be served from storage now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Up to date (stored, confirmed within the TTL, or immutable).
    Fresh,
    /// The upstream could not be asked: the stored tag may be stale.
    Stale,
}

impl Mirror {
    /// Makes `reference` of mirrored `local` available in storage.
    pub async fn prepare_manifest(
        &self,
        t: &Target,
        local: &RepoName,
        reference: &Reference,
    ) -> Result<Freshness, RegistryError> {
        let registry = &self.inner.registry;
        let m = &self.inner.metrics;
        let up = self.upstream(t);
        match reference {
            Reference::Digest(d) => {
                if registry.resolve(local, reference).await?.is_some() {
                    m.hits.inc();
                    return Ok(Freshness::Fresh);
                }
                self.obtain(t, local, d, None)
                    .await
                    .map_err(|e| e.response())?;
                Ok(Freshness::Fresh)
            }
            Reference::Tag(tag) => {
                let stored = registry.resolve(local, reference).await?;
                if stored.is_some() && self.inner.tags.fresh(local.as_str(), tag, up.ttl) {
                    m.hits.inc();
                    return Ok(Freshness::Fresh);
                }
                let r = self.refresh_tag(t, local, tag, stored.as_ref()).await;
                match r {
                    Ok(()) => Ok(Freshness::Fresh),
                    Err(MirrorError::Registry(e)) => Err(e),
                    Err(e) if stored.is_some() => {
                        m.stale.inc();
                        tracing::warn!(repository = %local, %tag, error = %e, "upstream unavailable; serving the stored tag");
                        Ok(Freshness::Stale)
                    }
                    Err(e) => Err(e.response()),
                }
            }
        }
    }

    /// Asks the upstream what `tag` names now and makes that available.
    async fn refresh_tag(
        &self,
        t: &Target,
        local: &RepoName,
        tag: &str,
        stored: Option<&Digest>,
    ) -> Result<(), MirrorError> {
        let up = self.upstream(t);
        let not_found = || {
            MirrorError::Registry(
                RegistryError::new(
                    ErrorCode::ManifestUnknown,
                    format!("manifest {tag} of {} not found on {}", t.remote, up.name),
                )
                .with_detail(serde_json::json!({ "tag": tag, "upstream": up.name })),
            )
        };
        let digest = match up.head_manifest(&t.remote, tag).await? {
            None => return Err(not_found()),
            Some(d) => d.and_then(|d| d.parse::<Digest>().ok()),
        };
        match digest {
            Some(d) => {
                if stored == Some(&d) {
                    self.inner.metrics.hits.inc();
                } else {
                    self.obtain(t, local, &d, Some(tag)).await?;
                }
            }
            None => {
                // No digest header: fetch by tag.
                let got = up
                    .get_manifest(&t.remote, tag)
                    .await?
                    .ok_or_else(not_found)?;
                let d = Digest::sha256(&got.bytes);
                self.store_upstream(t, local, &d, got.bytes, Some(tag))
                    .await?;
            }
        }
        self.inner.tags.confirm(local.as_str(), tag);
        Ok(())
    }

    /// Makes manifest `d` available in `local` (tagged `tag`): already
    /// stored, from peers by CID, or from the upstream.
    async fn obtain(
        &self,
        t: &Target,
        local: &RepoName,
        d: &Digest,
        tag: Option<&str>,
    ) -> Result<(), MirrorError> {
        let registry = &self.inner.registry;
        if registry
            .resolve(local, &Reference::Digest(d.clone()))
            .await?
            .is_some()
        {
            if let Some(tag) = tag {
                registry.tag_manifest(local, tag, d).await?;
            }
            return Ok(());
        }
        if self.take_from_peers(local, d, tag).await {
            return Ok(());
        }
        let up = self.upstream(t);
        let got = up
            .get_manifest(&t.remote, &d.to_string())
            .await?
            .ok_or_else(|| {
                MirrorError::Registry(RegistryError::manifest_unknown(d).with_detail(
                    serde_json::json!({ "digest": d.to_string(), "upstream": up.name }),
                ))
            })?;
        self.store_upstream(t, local, d, got.bytes, tag).await
    }

    /// Stores a manifest fetched upstream (verified against `d`) and, for
    /// an image, fetches its blobs in the background and publishes it.
    async fn store_upstream(
        &self,
        t: &Target,
        local: &RepoName,
        d: &Digest,
        bytes: bytes::Bytes,
        tag: Option<&str>,
    ) -> Result<(), MirrorError> {
        let up = self.upstream(t);
        let got = Digest::of(d.algorithm(), &bytes);
        if &got != d {
            return Err(MirrorError::Corrupt {
                upstream: up.name.clone(),
                what: format!("manifest {d}"),
                why: format!("the bytes hash to {got}"),
            });
        }
        let m = &self.inner.metrics;
        m.misses.inc();
        m.upstream_bytes.inc_by(bytes.len() as u64);
        let parsed = manifest::parse(&bytes, None)?;
        self.inner
            .registry
            .store_fetched_manifest(local, d, bytes, tag)
            .await?;
        tracing::info!(upstream = %up.name, repository = %local, digest = %d, tag = ?tag, "manifest fetched upstream");
        if parsed.kind == Kind::Image {
            self.complete(t, local, d, parsed, tag.unwrap_or("latest"));
        }
        Ok(())
    }

    /// Fetches every blob of image `d` not stored yet, then publishes it
    /// under digest and CID, in the background (once per image at a time).
    fn complete(&self, t: &Target, local: &RepoName, d: &Digest, m: Manifest, tag: &str) {
        if !self.inner.completing.lock().insert(d.clone()) {
            return;
        }
        let this = self.clone();
        let (t, local, d, tag) = (t.clone(), local.clone(), d.clone(), tag.to_string());
        tokio::spawn(async move {
            let blobs: Vec<Digest> = m
                .config
                .iter()
                .chain(&m.layers)
                .filter(|b| b.urls.is_empty())
                .map(|b| b.digest.clone())
                .collect();
            let r: Result<(), MirrorError> = async {
                stream::iter(blobs)
                    .map(|b| {
                        let this = &this;
                        let (t, local) = (&t, &local);
                        async move {
                            match this.fetch_blob(t, local, &b, false).await? {
                                Some(_) => Ok(()),
                                None => Err(MirrorError::Registry(RegistryError::blob_unknown(&b))),
                            }
                        }
                    })
                    .buffer_unordered(COMPLETE_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await?;
                if let Some(disco) = &this.inner.disco {
                    disco
                        .publish(&this.inner.registry, &local, &d, &m, &[tag])
                        .await
                        .map_err(|e| MirrorError::Registry(e.publish_response()))?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(repository = %local, digest = %d, error = %e, "mirrored image incomplete; its blobs are fetched as pulled");
            }
            this.inner.completing.lock().remove(&d);
        });
    }

    /// Takes image `d` from this node's published images or from a peer
    /// (by CID, every byte verified) and links it into `local`. False if
    /// no peer answered in time or the clone failed.
    async fn take_from_peers(&self, local: &RepoName, d: &Digest, tag: Option<&str>) -> bool {
        let Some(disco) = &self.inner.disco else {
            return false;
        };
        let known = matches!(disco.image_info(d).await, Ok(Some(_)));
        if !known {
            let Some(net) = &self.inner.network else {
                return false;
            };
            if disco.config().noclone {
                return false;
            }
            let peers: Vec<_> = net.connected_peers().into_iter().map(|(p, _)| p).collect();
            if peers.is_empty() {
                return false;
            }
            let control = net.stream_control();
            let Some((peer, cid)) = peers::ask(&control, peers, d, self.inner.peer_timeout).await
            else {
                tracing::debug!(digest = %d, "no peer has the image");
                return false;
            };
            tracing::info!(digest = %d, %peer, %cid, "image found on a peer; cloning it by CID");
            if let Err(e) = disco.clone_image(cid).await {
                tracing::warn!(digest = %d, %cid, error = %e, "clone from peers failed; using the upstream");
                return false;
            }
        }
        match self.link_image(local, d, tag).await {
            Ok(bytes) => {
                if !known {
                    self.inner.metrics.peer_hits.inc();
                    self.inner.metrics.peer_bytes.inc_by(bytes);
                }
                true
            }
            Err(e) => {
                tracing::warn!(digest = %d, error = %e, "cannot link the cloned image");
                false
            }
        }
    }

    /// Links stored image `d` (manifests and blobs) into `local`, tagging
    /// it `tag`; returns the size of its configs and layers.
    async fn link_image(
        &self,
        local: &RepoName,
        d: &Digest,
        tag: Option<&str>,
    ) -> Result<u64, RegistryError> {
        let registry = &self.inner.registry;
        let mut bytes = 0u64;
        let mut todo = vec![(d.clone(), 0usize)];
        let mut manifests = Vec::new();
        while let Some((md, depth)) = todo.pop() {
            let stored = registry.load_manifest(&md).await?;
            let parsed = manifest::parse(&stored.bytes, None)?;
            match parsed.kind {
                Kind::Image => {
                    for b in parsed.config.iter().chain(&parsed.layers) {
                        if registry.stat_global_blob(&b.digest).await?.is_some() {
                            registry.link_blob(local, &b.digest).await?;
                            bytes += b.size;
                        } else if b.urls.is_empty() {
                            return Err(RegistryError::blob_unknown(&b.digest));
                        }
                    }
                }
                Kind::Index if depth < MAX_DEPTH => {
                    todo.extend(
                        parsed
                            .manifests
                            .iter()
                            .map(|c| (c.digest.clone(), depth + 1)),
                    );
                }
                Kind::Index => {
                    return Err(RegistryError::manifest_invalid("indexes nested too deep"));
                }
            }
            manifests.push((md, stored.bytes.clone()));
        }
        // Children before the root, so the root never names a missing one.
        for (md, b) in manifests.into_iter().rev() {
            let t = if &md == d { tag } else { None };
            registry.store_fetched_manifest(local, &md, b, t).await?;
        }
        Ok(bytes)
    }
}
