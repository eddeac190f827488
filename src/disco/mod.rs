//! Content-addressed images: every image pushed to a normal repository is
//! published under its manifest digest and an IPFS CID, and any disco on
//! the same IPFS network can pull it by that CID.
//!
//! - Publishing ([`publish`]): on a manifest push by tag, the image's
//!   repository — its links and `disco.json` ([`json`]) — is built in
//!   memory as canonical UnixFS ([`layout`]), so its CID is a pure function
//!   of the image; its blocks are put into IPFS and the directory is copied
//!   into `repositories/<cid>`. The digest repository
//!   `repositories/<manifest hex>` gets tags `latest` and `<cid>`
//!   ([`links`]). The CIDs are provided to the network.
//! - Cloning ([`clone`]): a pull of `repositories/<cid>` that is not local
//!   fetches the repository DAG ([`tree`], validated strictly) and every
//!   blob by CID, verifies each blob against its digest before serving it
//!   (manifests first, so pulls start while layers arrive), and installs
//!   the repository when the image is whole. Bounded by
//!   `disco.clonetimeout`.
//! - Names ([`names`]): CIDv1 and digest-hex repositories are pull-only.
//! - HTTP ([`http`]): `GET /disco/v1/images/<digest>`, `GET /disco/v1/node`.
//! - Announcing ([`announce`]): what is stored, at start and periodically.
//! - Delegated routing ([`routing`]): `GET /routing/v1/providers|peers`.

pub mod announce;
pub mod clone;
pub mod error;
pub mod http;
pub mod json;
pub mod layout;
pub mod links;
pub mod metrics;
pub mod names;
pub mod publish;
pub mod routing;
pub mod tree;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use cid::Cid;
use parking_lot::Mutex;

pub use self::error::DiscoError;
pub use self::metrics::DiscoMetrics;
use self::names::NameKind;
use crate::config::DiscoConfig;
use crate::ipfs::embedded::net::Network;
use crate::ipfs::{Ipfs, NodeIdentity, cid_v1_string};
use crate::registry::hooks::RegistryHook;
use crate::registry::manifest::Manifest;
use crate::registry::manifests::Reference;
use crate::registry::{Digest, Registry, RegistryError, RepoName};
use crate::storage::Driver;
use crate::storage::cache::CacheDriver;
use crate::storage::ipfs::IpfsDriver;

/// Response header carrying the CID an image was published under.
pub const CID_HEADER: &str = "Disco-Cid";
/// Storage directory (outside the registry layout) where clones stage
/// each blob until it is verified.
pub const STAGING: &str = "/disco/clones";
/// Storage directory (outside the registry layout) remembering the
/// UnixFS CID of each blob in cache-only mode (`<alg>/<hex>` → CID).
pub const CIDS: &str = "/disco/cids";
/// Storage directory for directories being swapped into place.
pub const SWAP: &str = "/disco/swap";
/// Clones running at once; more wait (up to `disco.clonetimeout`).
pub const MAX_CLONES: usize = 16;

/// The content-addressed image layer: a [`RegistryHook`] plus the
/// `/disco/v1` endpoints. Cheap to clone.
#[derive(Clone)]
pub struct Disco {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DiscoConfig,
    driver: Driver,
    /// None in cache-only mode.
    ipfs: Option<IpfsDriver>,
    network: Option<Network>,
    /// The secondary store mirroring IPFS, if configured.
    cache: Option<CacheDriver>,
    metrics: DiscoMetrics,
    clones: Mutex<HashMap<Cid, clone::CloneHandle>>,
    /// Recently failed clones and why, oldest first.
    clone_failures: Mutex<VecDeque<(Cid, Instant, Arc<DiscoError>)>>,
    clone_slots: tokio::sync::Semaphore,
}

impl Disco {
    /// The layer over the registry's `driver` and the `ipfs` driver under
    /// it (often the same driver; none in cache-only mode); `network` is
    /// the embedded node's networking, if any; `cache` the secondary store
    /// `driver` mirrors IPFS into, if any.
    pub fn new(
        cfg: DiscoConfig,
        driver: Driver,
        ipfs: Option<IpfsDriver>,
        network: Option<Network>,
        cache: Option<CacheDriver>,
    ) -> Self {
        Disco {
            inner: Arc::new(Inner {
                cfg,
                driver,
                ipfs,
                network,
                cache,
                metrics: DiscoMetrics::default(),
                clones: Mutex::new(HashMap::new()),
                clone_failures: Mutex::new(VecDeque::new()),
                clone_slots: tokio::sync::Semaphore::new(MAX_CLONES),
            }),
        }
    }

    /// The metrics (register them with the server's registry).
    pub fn metrics(&self) -> &DiscoMetrics {
        &self.inner.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &DiscoConfig {
        &self.inner.cfg
    }

    /// The `ipfs` driver (an error in cache-only mode).
    fn mfs(&self) -> Result<&IpfsDriver, DiscoError> {
        self.inner.ipfs.as_ref().ok_or(DiscoError::NoIpfs)
    }

    /// The IPFS backend (an error in cache-only mode).
    fn ipfs(&self) -> Result<&Arc<dyn Ipfs>, DiscoError> {
        Ok(self.mfs()?.ipfs())
    }

    /// Removes what an interrupted clone or swap left behind (call once at
    /// start, before serving).
    pub async fn remove_leftovers(&self) {
        let Some(mfs) = &self.inner.ipfs else {
            return;
        };
        for dir in [STAGING, SWAP] {
            match mfs.ipfs().files_rm(&mfs.mfs_path(dir), true).await {
                Ok(()) => tracing::info!(path = dir, "removed leftovers of an interrupted clone"),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(path = dir, error = %e, "cannot remove clone leftovers"),
            }
        }
    }

    /// This node's identity (peer id and addresses).
    pub async fn node(&self) -> Result<NodeIdentity, DiscoError> {
        match &self.inner.network {
            Some(net) => Ok(net.identity()),
            None => Ok(self.ipfs()?.id().await?),
        }
    }
}

fn pull_only(name: &RepoName, what: &str) -> RegistryError {
    RegistryError::denied(format!(
        "repository {name} is named by {what}: it is a content-addressed image and pull-only; \
         push to a normal repository name and disco publishes the image under its digest and CID"
    ))
    .with_detail(serde_json::json!({ "name": name.as_str() }))
}

#[async_trait]
impl RegistryHook for Disco {
    fn check_push(&self, name: &RepoName) -> crate::registry::Result<()> {
        match names::classify(name) {
            NameKind::Cid { .. } => Err(pull_only(name, "an IPFS CID")),
            NameKind::Digest => Err(pull_only(name, "a manifest digest")),
            NameKind::Normal => Ok(()),
        }
    }

    async fn manifest_pushed(
        &self,
        registry: &Registry,
        name: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
        tags: &[String],
    ) -> crate::registry::Result<Vec<(String, String)>> {
        if tags.is_empty() || names::classify(name) != NameKind::Normal {
            return Ok(Vec::new());
        }
        let published = self
            .publish(registry, name, digest, manifest, tags)
            .await
            .map_err(|e| {
                tracing::error!(repository = %name, %digest, error = %e, "publishing failed");
                e.publish_response()
            })?;
        Ok(vec![(
            CID_HEADER.to_string(),
            cid_v1_string(&published.cid),
        )])
    }

    async fn manifest_missing(
        &self,
        registry: &Registry,
        name: &RepoName,
        reference: &Reference,
    ) -> crate::registry::Result<Option<Digest>> {
        let Some(cid) = self.clonable(name) else {
            return Ok(None);
        };
        if registry.repo_exists(name).await? {
            // Cloned since the registry looked.
            return registry.resolve(name, reference).await;
        }
        let text = cid_v1_string(&cid);
        match self
            .clone_manifests(cid)
            .await
            .map_err(|e| e.clone_response(&text))?
        {
            Some(image) => Ok(match reference {
                Reference::Tag(t) if t == layout::LATEST => Some(image.manifest.clone()),
                Reference::Digest(d) if image.manifests.contains(d) => Some(d.clone()),
                _ => None,
            }),
            None => registry.resolve(name, reference).await,
        }
    }

    async fn repository_missing(
        &self,
        registry: &Registry,
        name: &RepoName,
    ) -> crate::registry::Result<bool> {
        let Some(cid) = self.clonable(name) else {
            return Ok(false);
        };
        if registry.repo_exists(name).await? {
            return Ok(true);
        }
        let text = cid_v1_string(&cid);
        self.clone_image(cid)
            .await
            .map_err(|e| e.clone_response(&text))?;
        Ok(true)
    }

    async fn blob_missing(
        &self,
        registry: &Registry,
        name: &RepoName,
        digest: &Digest,
    ) -> crate::registry::Result<bool> {
        let Some(cid) = self.clonable(name) else {
            return Ok(false);
        };
        // A blob request does not start a clone (a client pulls the
        // manifest first; a mistaken push HEADs blobs before it is
        // refused): it waits for the clone running, if any.
        let text = cid_v1_string(&cid);
        let Some(handle) = self.running_clone(&cid) else {
            if registry.repo_exists(name).await? {
                // Cloned since the registry looked.
                return registry.is_linked(name, digest).await;
            }
            return match self.recent_failure(&cid) {
                Some(e) => Err(e.blob_response(&text, digest)),
                None => Ok(false),
            };
        };
        match self
            .clone_blob(handle, digest)
            .await
            .map_err(|e| e.blob_response(&text, digest))?
        {
            clone::BlobWait::Ready => Ok(true),
            clone::BlobWait::NotInImage => Ok(false),
            clone::BlobWait::Installed => registry.is_linked(name, digest).await,
        }
    }
}

impl Disco {
    /// The CID `name` is a canonical clone target for, when cloning is on.
    fn clonable(&self, name: &RepoName) -> Option<Cid> {
        if self.inner.cfg.noclone || self.inner.ipfs.is_none() {
            return None;
        }
        match names::classify(name) {
            NameKind::Cid {
                cid,
                canonical: true,
            } => Some(cid),
            _ => None,
        }
    }
}
