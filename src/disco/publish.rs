//! Publishing an image after a manifest push: its blobs' CIDs, the
//! image repository DAG put into IPFS and copied to `repositories/<cid>`,
//! the digest repository, and providing the CIDs to the network.

use std::collections::BTreeSet;

use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt, stream};

use super::error::{DiscoError, Result};
use super::json::{BlobRef, DiscoJson};
use super::layout::{self, ImageFiles, RepoDag};
use super::{Disco, SWAP, links};
use crate::ipfs::{IpfsError, cid_v1_string, same_cid, to_v1};
use crate::registry::manifest::{self, Kind, Manifest};
use crate::registry::{Digest, ErrorCode, Registry, RegistryError, RepoName, paths};

/// Index nesting followed when collecting an image's manifests.
const MAX_INDEX_DEPTH: usize = 8;
/// IPFS calls in flight at once while publishing.
const CONCURRENCY: usize = 8;

/// The outcome of publishing an image.
#[derive(Debug, Clone)]
pub struct Published {
    /// The image repository's CID.
    pub cid: Cid,
    /// What the repository links.
    pub files: ImageFiles,
    /// Its blob list.
    pub json: DiscoJson,
}

/// Every manifest, config and layer of the image `root` (a manifest or an
/// index, followed through nested indexes). Layers with `urls` that are
/// not stored (non-distributable) are left out; a subject is not part of
/// the image.
pub async fn collect(registry: &Registry, root: &Digest, m: &Manifest) -> Result<ImageFiles> {
    let mut manifests = vec![root.clone()];
    let mut layers: BTreeSet<Digest> = BTreeSet::new();
    let mut queue: Vec<(Manifest, usize)> = vec![(m.clone(), 0)];
    while let Some((m, depth)) = queue.pop() {
        match m.kind {
            Kind::Image => {
                for d in m.config.iter().chain(&m.layers) {
                    if !d.urls.is_empty() && registry.stat_global_blob(&d.digest).await?.is_none() {
                        continue;
                    }
                    layers.insert(d.digest.clone());
                }
            }
            Kind::Index => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(RegistryError::manifest_invalid(format!(
                        "image indexes nested deeper than {MAX_INDEX_DEPTH}"
                    ))
                    .into());
                }
                for child in &m.manifests {
                    if manifests.contains(&child.digest) {
                        continue;
                    }
                    let stored = registry.load_manifest(&child.digest).await?;
                    let parsed = manifest::parse(&stored.bytes, Some(&stored.media_type))?;
                    manifests.push(child.digest.clone());
                    queue.push((parsed, depth + 1));
                }
            }
        }
    }
    Ok(ImageFiles {
        manifest: root.clone(),
        manifests,
        layers: layers.into_iter().collect(),
    })
}

impl Disco {
    /// The CID of a stored blob: its `data` file in MFS, as CIDv1.
    async fn blob_cid(&self, d: &Digest) -> Result<Cid> {
        let path = self.inner.ipfs.mfs_path(&paths::blob_data(d));
        match self.ipfs().files_stat(&path).await {
            Ok(st) => Ok(to_v1(&st.cid)),
            Err(IpfsError::NotFound(_)) => Err(RegistryError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("blob {d} of the image is not stored in IPFS"),
            )
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts every block of `dag` into the backend.
    async fn put_blocks(&self, dag: &RepoDag) -> Result<()> {
        let ipfs = self.ipfs();
        stream::iter(dag.blocks.clone())
            .map(|(cid, data)| async move {
                let got = ipfs.block_put(data, cid.codec()).await?;
                if !same_cid(&got, &cid) {
                    return Err(DiscoError::Ipfs(IpfsError::Other(format!(
                        "block/put answered {got} for block {cid}"
                    ))));
                }
                Ok(())
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Makes `repositories/<root>` the directory `root` (already in the
    /// backend); an existing directory with another CID is replaced.
    pub(crate) async fn install_repo(&self, root: &Cid) -> Result<()> {
        let ipfs = self.ipfs();
        let name = cid_v1_string(root);
        let target = self
            .inner
            .ipfs
            .mfs_path(&format!("{}/{name}", paths::REPOSITORIES));
        let source = format!("/ipfs/{name}");
        match ipfs.files_stat(&target).await {
            Ok(st) if same_cid(&st.cid, root) => return Ok(()),
            Ok(st) => {
                tracing::warn!(cid = %name, found = %st.cid, "replacing a damaged image repository");
                let swap = self
                    .inner
                    .ipfs
                    .mfs_path(&format!("{SWAP}/{}", uuid::Uuid::new_v4().simple()));
                ipfs.files_cp(&source, &swap, true).await?;
                match ipfs.files_rm(&target, true).await {
                    Ok(()) | Err(IpfsError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                ipfs.files_mv(&swap, &target).await?;
                return Ok(());
            }
            Err(IpfsError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match ipfs.files_cp(&source, &target, true).await {
            Ok(()) => Ok(()),
            // Published or cloned at the same time by another request.
            Err(IpfsError::AlreadyExists(_)) => match ipfs.files_stat(&target).await {
                Ok(st) if same_cid(&st.cid, root) => Ok(()),
                Ok(st) => Err(IpfsError::Other(format!(
                    "{target} appeared with CID {} instead of {name}",
                    st.cid
                ))
                .into()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Announces `root` and the blobs to the network, in the background.
    pub(crate) fn provide(&self, root: Cid, blobs: &[BlobRef]) {
        let ipfs = self.ipfs().clone();
        let cids: Vec<Cid> = std::iter::once(root)
            .chain(blobs.iter().map(|b| b.cid))
            .collect();
        tokio::spawn(async move {
            for cid in cids {
                if let Err(e) = ipfs.provide(&cid).await {
                    tracing::warn!(%cid, error = %e, "providing to the IPFS network failed");
                }
            }
        });
    }

    /// Publishes the image `digest` just pushed to `name` with `tags`.
    pub async fn publish(
        &self,
        registry: &Registry,
        name: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
        tags: &[String],
    ) -> Result<Published> {
        let files = collect(registry, digest, manifest).await?;
        let all: BTreeSet<Digest> = files
            .manifests
            .iter()
            .chain(&files.layers)
            .cloned()
            .collect();
        let blobs: Vec<BlobRef> = stream::iter(all)
            .map(|d| async move {
                let cid = self.blob_cid(&d).await?;
                Ok::<_, DiscoError>(BlobRef { digest: d, cid })
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let json =
            DiscoJson::new(blobs).map_err(|e| DiscoError::Ipfs(IpfsError::Other(e.to_string())))?;
        let dag = layout::build(&files, Bytes::from(json.to_bytes())).await?;
        self.put_blocks(&dag).await?;
        self.install_repo(&dag.root).await?;
        links::write_digest_repo(&self.inner.driver, &files, &dag.root).await?;
        if !self.inner.cfg.keepnames {
            match self.inner.driver.delete(&paths::repo(name)).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.provide(dag.root, &json.blobs);
        self.inner.metrics.published.inc();
        tracing::info!(
            repository = %name,
            tags = ?tags,
            %digest,
            cid = %cid_v1_string(&dag.root),
            blobs = json.blobs.len(),
            "image published"
        );
        Ok(Published {
            cid: dag.root,
            files,
            json,
        })
    }
}
