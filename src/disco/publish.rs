//! Publishing an image after a manifest push: its blobs' CIDs, the
//! image repository DAG put into IPFS and copied to `repositories/<cid>`,
//! the digest repository, and providing the CIDs to the network.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt, stream};

use super::error::{DiscoError, Result};
use super::json::{BlobRef, DiscoJson};
use super::layout::{self, ImageFiles, RepoDag};
use super::{CIDS, Disco, SWAP, links};
use crate::ipfs::unixfs::{FileImporter, NullSink};
use crate::ipfs::{IpfsError, cid_v1_string, same_cid, to_v1};
use crate::registry::manifest::{self, Kind, Manifest};
use crate::registry::{Digest, ErrorCode, Registry, RegistryError, RepoName, paths};
use crate::storage::StorageError;

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
    /// The CID of a stored blob: its `data` file in MFS, as CIDv1. A blob
    /// IPFS lost that the cache holds is restored into IPFS first.
    async fn blob_cid(&self, d: &Digest) -> Result<Cid> {
        let Some(mfs) = &self.inner.ipfs else {
            return self.computed_blob_cid(d).await;
        };
        let data = paths::blob_data(d);
        let path = mfs.mfs_path(&data);
        let stat = || async {
            self.ipfs()?
                .files_stat(&path)
                .await
                .map_err(DiscoError::from)
        };
        let mut found = stat().await;
        if matches!(found, Err(DiscoError::Ipfs(IpfsError::NotFound(_))))
            && let Some(cache) = &self.inner.cache
        {
            match cache.ensure_primary(&data).await {
                Ok(_) => found = stat().await,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        match found {
            Ok(st) => Ok(to_v1(&st.cid)),
            Err(DiscoError::Ipfs(IpfsError::NotFound(_))) => Err(RegistryError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("blob {d} of the image is not stored in IPFS"),
            )
            .into()),
            Err(e) => Err(e),
        }
    }

    /// Cache-only mode: the CID `ipfs add --cid-version=1` gives the blob,
    /// computed from its bytes (and remembered under [`CIDS`]), so the
    /// image gets the same CID it would get on IPFS.
    async fn computed_blob_cid(&self, d: &Digest) -> Result<Cid> {
        let driver = &self.inner.driver;
        let memo = format!("{CIDS}/{}/{}", d.algorithm().as_str(), d.hex());
        match driver.get_content(&memo).await {
            Ok(b) => {
                if let Some(cid) = std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| Cid::try_from(s.trim()).ok())
                {
                    return Ok(cid);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let mut s = match driver.reader(&paths::blob_data(d), 0).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                return Err(RegistryError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!("blob {d} of the image is not stored"),
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut imp = FileImporter::new(Arc::new(NullSink), 1);
        while let Some(chunk) = s
            .try_next()
            .await
            .map_err(|e| StorageError::io(&paths::blob_data(d), e))?
        {
            imp.push(chunk).await?;
        }
        let cid = imp.finish().await?.cid;
        driver
            .put_content(&memo, Bytes::from(cid_v1_string(&cid)))
            .await?;
        Ok(cid)
    }

    /// Cache-only mode: writes the image repository's files through the
    /// driver under `repositories/<root>`.
    async fn write_repo_files(&self, root: &Cid, files: Vec<(String, Bytes)>) -> Result<()> {
        let dir = format!("{}/{}", paths::REPOSITORIES, cid_v1_string(root));
        for (rel, content) in files {
            self.inner
                .driver
                .put_content(&format!("{dir}/{rel}"), content)
                .await?;
        }
        Ok(())
    }

    /// Makes the cache hold the whole image: every blob and the image
    /// repository `root`.
    pub(crate) async fn mirror_to_cache(&self, root: &Cid, blobs: &[BlobRef]) -> Result<()> {
        let Some(cache) = &self.inner.cache else {
            return Ok(());
        };
        let data: Vec<String> = blobs.iter().map(|b| paths::blob_data(&b.digest)).collect();
        stream::iter(data)
            .map(|p| async move { cache.ensure_cached(&p).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<bool>>()
            .await?;
        cache
            .mirror_tree(&format!("{}/{}", paths::REPOSITORIES, cid_v1_string(root)))
            .await?;
        Ok(())
    }

    /// Puts every block of `dag` into the backend.
    async fn put_blocks(&self, dag: &RepoDag) -> Result<()> {
        let ipfs = self.ipfs()?;
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
        let ipfs = self.ipfs()?;
        let mfs = self.mfs()?;
        let name = cid_v1_string(root);
        let target = mfs.mfs_path(&format!("{}/{name}", paths::REPOSITORIES));
        let source = format!("/ipfs/{name}");
        match ipfs.files_stat(&target).await {
            Ok(st) if same_cid(&st.cid, root) => return Ok(()),
            Ok(st) => {
                tracing::warn!(cid = %name, found = %st.cid, "replacing a damaged image repository");
                let swap = mfs.mfs_path(&format!("{SWAP}/{}", uuid::Uuid::new_v4().simple()));
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
        let Ok(ipfs) = self.ipfs().cloned() else {
            return;
        };
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
        let json_bytes = Bytes::from(json.to_bytes());
        let dag = layout::build(&files, json_bytes.clone()).await?;
        if self.inner.ipfs.is_some() {
            self.put_blocks(&dag).await?;
            self.install_repo(&dag.root).await?;
            self.mirror_to_cache(&dag.root, &json.blobs).await?;
        } else {
            self.write_repo_files(&dag.root, layout::file_list(&files, json_bytes))
                .await?;
        }
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
