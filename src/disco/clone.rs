//! Cloning an image repository by CID from the IPFS network.
//!
//! 1. The repository DAG is fetched and validated ([`super::tree`]) within
//!    `disco.clonetimeout`; if no peer provides it, the clone fails as not
//!    found.
//! 2. Its manifests, then its configs and layers (smallest first), are
//!    streamed by CID, hashed while read and checked against their digests
//!    (and against the sizes the manifests give), copied into a staging
//!    directory outside the registry layout, and moved into `blobs/` one by
//!    one as each is verified. Blobs already stored are skipped. A blob
//!    stalling longer than the timeout fails the clone as not found.
//! 3. When every blob is there, the repository is copied to
//!    `repositories/<cid>` and the digest repository written. On failure
//!    the staging directory is removed; blobs already verified stay in
//!    `blobs/` (correct content no repository links, as after an
//!    interrupted push), and no repository appears.
//!
//! Pulls do not wait for the whole image: a manifest is served as soon as
//! every manifest of the image is verified, and a blob of the image as
//! soon as that blob is ([`Progress`]), so clients download layers while
//! later ones still arrive. Nothing unverified is ever served.
//!
//! Concurrent pulls of one CID share one clone, which runs in its own task
//! (a client that gives up does not cancel it for the others); at most
//! [`super::MAX_CLONES`] clones run at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cid::Cid;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use tokio::sync::watch;

use super::error::{DiscoError, Result};
use super::json::BlobRef;
use super::tree::{self, RemoteRepo};
use super::{Disco, STAGING, links};
use crate::ipfs::{IpfsError, cid_v1_string};
use crate::registry::digest::Digester;
use crate::registry::manifest::{self, Kind};
use crate::registry::{Digest, paths};
use crate::storage::StorageDriver;

/// A clone's outcome, awaited by every pull of its CID.
pub(crate) type SharedClone = Shared<BoxFuture<'static, Result<(), Arc<DiscoError>>>>;

/// A clone in progress: its outcome and what it has made available so far.
#[derive(Clone)]
pub(crate) struct CloneHandle {
    done: SharedClone,
    progress: watch::Receiver<Progress>,
}

/// What a running clone has made available to pulls. The clone task
/// holds the sender: when it is closed, the clone has ended and
/// [`CloneHandle::done`] has its outcome.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The image, once all its manifests are verified and stored.
    image: Option<Arc<ImageBlobs>>,
    /// Blobs of the image verified and stored in `blobs/` so far.
    ready: HashSet<Digest>,
}

/// An image's manifests and blobs, as its verified manifests give them.
#[derive(Debug)]
pub(crate) struct ImageBlobs {
    /// The manifest tag `latest` names.
    pub manifest: Digest,
    /// Every manifest (an index and its children).
    pub manifests: HashSet<Digest>,
    /// Every blob the image links: manifests, configs and layers.
    pub blobs: HashSet<Digest>,
}

/// What a pull waiting for one blob of a clone gets.
pub(crate) enum BlobWait {
    /// The blob is verified and stored.
    Ready,
    /// The image does not link this blob.
    NotInImage,
    /// The clone finished: the repository is installed.
    Installed,
}

/// How long a failed clone's error is kept for the blob requests of
/// clients that got its manifest.
const FAILURE_MEMORY: Duration = Duration::from_secs(300);
/// Failed clones remembered at most.
const MAX_FAILURES: usize = 64;
/// Blobs fetched at once by one clone.
const BLOB_CONCURRENCY: usize = 4;
/// A large blob's fetch is logged every this many bytes.
const PROGRESS_EVERY: u64 = 256 * 1024 * 1024;
/// Largest manifest accepted from the network (the registry's push limit).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// What a clone fetched.
#[derive(Debug, Default, Clone, Copy)]
struct Fetched {
    blobs: u64,
    bytes: u64,
}

/// A clone in progress, as the node page shows it.
#[derive(Debug, Clone)]
pub struct CloneStatus {
    /// The image's CID.
    pub cid: String,
    /// Blobs verified and stored so far.
    pub ready: usize,
    /// Blobs of the image, once its manifests are known.
    pub total: Option<usize>,
}

impl Disco {
    /// The clones running now, sorted by CID.
    pub fn clones_running(&self) -> Vec<CloneStatus> {
        let mut out: Vec<CloneStatus> = self
            .inner
            .clones
            .lock()
            .iter()
            .map(|(cid, h)| {
                let p = h.progress.borrow();
                CloneStatus {
                    cid: cid_v1_string(cid),
                    ready: p.ready.len(),
                    total: p.image.as_ref().map(|i| i.blobs.len()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.cid.cmp(&b.cid));
        out
    }
}

impl Disco {
    /// Clones the image repository `cid` into the registry, or waits for
    /// the clone already running, until it is whole.
    pub async fn clone_image(&self, cid: Cid) -> Result<(), Arc<DiscoError>> {
        self.start_clone(cid).done.await
    }

    /// Waits until the manifests of image `cid` are verified and stored
    /// (starting its clone if none runs): `Some` with the image's blobs,
    /// or `None` if the clone ended before and installed the image.
    pub(crate) async fn clone_manifests(
        &self,
        cid: Cid,
    ) -> Result<Option<Arc<ImageBlobs>>, Arc<DiscoError>> {
        let handle = self.start_clone(cid);
        let mut rx = handle.progress.clone();
        let image = rx
            .wait_for(|p| p.image.is_some())
            .await
            .ok()
            .and_then(|p| p.image.clone());
        if image.is_none() {
            handle.done.await?;
        }
        Ok(image)
    }

    /// Waits until blob `digest` of the image `handle` clones is verified
    /// and stored.
    pub(crate) async fn clone_blob(
        &self,
        handle: CloneHandle,
        digest: &Digest,
    ) -> Result<BlobWait, Arc<DiscoError>> {
        let mut rx = handle.progress.clone();
        let seen = rx
            .wait_for(|p| {
                p.ready.contains(digest)
                    || p.image.as_ref().is_some_and(|i| !i.blobs.contains(digest))
            })
            .await
            .ok()
            .map(|p| {
                if p.ready.contains(digest) {
                    BlobWait::Ready
                } else {
                    BlobWait::NotInImage
                }
            });
        match seen {
            Some(w) => Ok(w),
            None => {
                handle.done.await?;
                Ok(BlobWait::Installed)
            }
        }
    }

    /// The clone of `cid` running now, if any.
    pub(crate) fn running_clone(&self, cid: &Cid) -> Option<CloneHandle> {
        self.inner.clones.lock().get(cid).cloned()
    }

    /// Why the last clone of `cid` failed, if it did within
    /// [`FAILURE_MEMORY`].
    pub(crate) fn recent_failure(&self, cid: &Cid) -> Option<Arc<DiscoError>> {
        let failures = self.inner.clone_failures.lock();
        failures
            .iter()
            .rev()
            .find(|(c, at, _)| c == cid && at.elapsed() < FAILURE_MEMORY)
            .map(|(_, _, e)| e.clone())
    }

    /// Remembers (or, on success, forgets) how the clone of `cid` ended.
    fn record_outcome(&self, cid: Cid, r: &Result<(), Arc<DiscoError>>) {
        let mut failures = self.inner.clone_failures.lock();
        failures.retain(|(c, at, _)| *c != cid && at.elapsed() < FAILURE_MEMORY);
        if let Err(e) = r {
            if failures.len() == MAX_FAILURES {
                failures.pop_front();
            }
            failures.push_back((cid, Instant::now(), e.clone()));
        }
    }

    /// The running clone of `cid`, or a new one.
    fn start_clone(&self, cid: Cid) -> CloneHandle {
        let mut clones = self.inner.clones.lock();
        if let Some(h) = clones.get(&cid) {
            return h.clone();
        }
        let (tx, rx) = watch::channel(Progress::default());
        let this = self.clone();
        let task = tokio::spawn(async move {
            let r = this.run_clone(cid, &tx).await.map_err(Arc::new);
            this.record_outcome(cid, &r);
            this.inner.clones.lock().remove(&cid);
            // Dropping `tx` tells the waiters the clone ended.
            r
        });
        let this = self.clone();
        let done: SharedClone = async move {
            task.await.unwrap_or_else(|e| {
                // The task died before forgetting itself: a later pull
                // starts afresh.
                this.inner.clones.lock().remove(&cid);
                Err(Arc::new(DiscoError::Ipfs(IpfsError::Other(format!(
                    "clone task failed: {e}"
                )))))
            })
        }
        .boxed()
        .shared();
        let handle = CloneHandle { done, progress: rx };
        clones.insert(cid, handle.clone());
        handle
    }

    async fn run_clone(&self, cid: Cid, progress: &watch::Sender<Progress>) -> Result<()> {
        let wait = self.inner.cfg.clonetimeout;
        let _slot = match tokio::time::timeout(wait, self.inner.clone_slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(DiscoError::Busy(super::MAX_CLONES)),
        };
        let m = &self.inner.metrics;
        m.clones_started.inc();
        m.clones_in_flight.inc();
        let start = Instant::now();
        let text = cid_v1_string(&cid);
        tracing::info!(cid = %text, "cloning image from IPFS");
        let staging = format!("{STAGING}/{text}-{}", uuid::Uuid::new_v4().simple());
        let r = self.clone_into(cid, &staging, progress).await;
        match self
            .ipfs()?
            .files_rm(&self.mfs()?.mfs_path(&staging), true)
            .await
        {
            Ok(()) | Err(IpfsError::NotFound(_)) => {}
            Err(e) => tracing::warn!(path = %staging, error = %e, "cannot remove clone staging"),
        }
        m.clones_in_flight.dec();
        match &r {
            Ok(f) => {
                m.clones_succeeded.inc();
                tracing::info!(
                    cid = %text,
                    blobs = f.blobs,
                    bytes = f.bytes,
                    elapsed = ?start.elapsed(),
                    "image cloned"
                );
            }
            Err(e) => {
                m.clones_failed.inc();
                tracing::warn!(cid = %text, error = %e, elapsed = ?start.elapsed(), "clone failed");
            }
        }
        r.map(|_| ())
    }

    async fn clone_into(
        &self,
        cid: Cid,
        staging: &str,
        progress: &watch::Sender<Progress>,
    ) -> Result<Fetched> {
        let timeout = self.inner.cfg.clonetimeout;
        let text = cid_v1_string(&cid);
        let repo =
            match tokio::time::timeout(timeout, tree::fetch(&**self.ipfs()?, cid, timeout)).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(DiscoError::NotFound {
                        what: format!("image {text}"),
                        timeout,
                    });
                }
            };
        tracing::info!(
            cid = %text,
            manifest = %repo.files.manifest,
            blobs = repo.json.blobs.len(),
            blocks = repo.blocks,
            "image repository fetched; fetching blobs"
        );
        let mut fetched = Fetched::default();

        // Manifests first: they give the sizes of everything else.
        let repo = &repo;
        let results: Vec<(Digest, Option<u64>, Bytes)> = stream::iter(repo.files.manifests.clone())
            .map(|d| async move {
                let b = blob_ref(repo, cid, &d)?;
                let (size, bytes) = match self
                    .fetch_blob(cid, &b, None, MAX_MANIFEST, true, staging)
                    .await?
                {
                    Some((size, bytes)) => (Some(size), bytes),
                    None => (
                        None,
                        self.inner.driver.get_content(&paths::blob_data(&d)).await?,
                    ),
                };
                Ok::<_, DiscoError>((d, size, bytes))
            })
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect()
            .await?;
        let mut sizes: BTreeMap<Digest, u64> = BTreeMap::new();
        let manifests: HashSet<&Digest> = repo.files.manifests.iter().collect();
        let layers: HashSet<&Digest> = repo.files.layers.iter().collect();
        for (d, size, bytes) in &results {
            if let Some(size) = size {
                fetched.blobs += 1;
                fetched.bytes += size;
            }
            let m = manifest::parse(bytes, None)
                .map_err(|e| DiscoError::invalid(cid, format!("manifest {d}: {}", e.message)))?;
            match m.kind {
                Kind::Image => {
                    for desc in m.config.iter().chain(&m.layers) {
                        if layers.contains(&desc.digest) {
                            sizes.insert(desc.digest.clone(), desc.size);
                        } else if desc.urls.is_empty() {
                            return Err(DiscoError::invalid(
                                cid,
                                format!("blob {} of manifest {d} is not linked", desc.digest),
                            ));
                        }
                    }
                }
                Kind::Index => {
                    for desc in &m.manifests {
                        if !manifests.contains(&desc.digest) {
                            return Err(DiscoError::invalid(
                                cid,
                                format!("manifest {} of index {d} is not linked", desc.digest),
                            ));
                        }
                    }
                }
            }
        }

        // The manifests are verified: make them visible to pulls of this
        // image, which can start while its layers arrive.
        for (d, size, _) in &results {
            if size.is_some() {
                self.make_visible(staging, d).await?;
            }
        }
        progress.send_modify(|p| {
            p.image = Some(Arc::new(ImageBlobs {
                manifest: repo.files.manifest.clone(),
                manifests: manifests.iter().map(|d| (*d).clone()).collect(),
                blobs: manifests.union(&layers).map(|d| (*d).clone()).collect(),
            }));
            p.ready.extend(repo.files.manifests.iter().cloned());
        });

        // Then every config and layer, smallest first, bounded by the size
        // its manifest gives; each is visible as soon as it is verified.
        let sizes = &sizes;
        let mut rest: Vec<Digest> = repo
            .files
            .layers
            .iter()
            .filter(|d| !manifests.contains(d))
            .cloned()
            .collect();
        rest.sort_by_key(|d| sizes.get(d).copied().unwrap_or(u64::MAX));
        let blobs: Vec<Option<u64>> = stream::iter(rest)
            .map(|d| async move {
                let b = blob_ref(repo, cid, &d)?;
                let expect = sizes.get(&d).copied();
                let limit = expect.unwrap_or(u64::MAX);
                let got = self
                    .fetch_blob(cid, &b, expect, limit, false, staging)
                    .await?;
                if got.is_some() {
                    self.make_visible(staging, &d).await?;
                }
                progress.send_modify(|p| {
                    p.ready.insert(d);
                });
                Ok::<_, DiscoError>(got.map(|(size, _)| size))
            })
            .buffer_unordered(BLOB_CONCURRENCY)
            .try_collect()
            .await?;
        for size in blobs.into_iter().flatten() {
            fetched.blobs += 1;
            fetched.bytes += size;
        }

        // Every blob is there: install the repository.
        self.install_repo(&cid).await?;
        let linked: Vec<BlobRef> = repo
            .json
            .blobs
            .iter()
            .filter(|b| manifests.contains(&b.digest) || layers.contains(&b.digest))
            .cloned()
            .collect();
        self.mirror_to_cache(&cid, &linked).await?;
        links::write_digest_repo(&self.inner.driver, &repo.files, &cid).await?;
        self.provide(cid, &linked);
        Ok(fetched)
    }

    /// Moves verified blob `d` from `staging` into `blobs/`, unless a
    /// push or another clone stored it meanwhile.
    async fn make_visible(&self, staging: &str, d: &Digest) -> Result<()> {
        let data = paths::blob_data(d);
        let present = match self.inner.driver.stat(&data).await {
            Ok(info) => !info.is_dir,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e.into()),
        };
        if !present {
            StorageDriver::rename(self.mfs()?, &staged_path(staging, d), &data).await?;
        }
        Ok(())
    }

    /// Streams one blob by CID, verifying its digest (and `expect`ed size,
    /// never reading more than `limit` bytes), and copies it into
    /// `staging`. Returns `None` if the blob is already stored, else its
    /// size and (with `keep`) its bytes.
    async fn fetch_blob(
        &self,
        image: Cid,
        b: &BlobRef,
        expect: Option<u64>,
        limit: u64,
        keep: bool,
        staging: &str,
    ) -> Result<Option<(u64, Bytes)>> {
        match self.inner.driver.stat(&paths::blob_data(&b.digest)).await {
            Ok(info) if !info.is_dir => return Ok(None),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let timeout = self.inner.cfg.clonetimeout;
        let what = || format!("blob {} ({}) of image {image}", b.digest, b.cid);
        let not_found = || DiscoError::NotFound {
            what: what(),
            timeout,
        };
        let ipfs = self.ipfs()?;
        let mut s = match tokio::time::timeout(timeout, ipfs.cat(&b.cid, 0, None)).await {
            Err(_) | Ok(Err(IpfsError::Timeout(_) | IpfsError::NotFound(_))) => {
                return Err(not_found());
            }
            Ok(Err(IpfsError::NotAFile(_))) => {
                return Err(DiscoError::invalid(
                    image,
                    format!("{} is not a file", what()),
                ));
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(s)) => s,
        };
        let mut hasher = Digester::new(b.digest.algorithm());
        let mut size = 0u64;
        let mut kept = BytesMut::new();
        loop {
            let chunk = match tokio::time::timeout(timeout, s.try_next()).await {
                Err(_) => return Err(not_found()),
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(match e.kind() {
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::NotFound => not_found(),
                        _ => DiscoError::Ipfs(IpfsError::Other(format!("reading {}: {e}", what()))),
                    });
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                return Err(DiscoError::invalid(
                    image,
                    format!("{} is larger than {limit} bytes", what()),
                ));
            }
            self.inner.metrics.bytes_fetched.inc_by(chunk.len() as u64);
            if size / PROGRESS_EVERY != (size - chunk.len() as u64) / PROGRESS_EVERY {
                tracing::info!(image = %image, digest = %b.digest, bytes = size, expected = ?expect, "fetching blob");
            }
            hasher.update(&chunk);
            if keep {
                kept.extend_from_slice(&chunk);
            }
        }
        if let Some(e) = expect
            && e != size
        {
            return Err(DiscoError::invalid(
                image,
                format!("{} has {size} bytes; its manifest says {e}", what()),
            ));
        }
        let got = hasher.finish();
        if got != b.digest {
            return Err(DiscoError::invalid(
                image,
                format!("the bytes of {} hash to {got}", what()),
            ));
        }
        let dst = self.mfs()?.mfs_path(&staged_path(staging, &b.digest));
        match ipfs
            .files_cp(&format!("/ipfs/{}", cid_v1_string(&b.cid)), &dst, true)
            .await
        {
            Ok(()) | Err(IpfsError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.metrics.blobs_fetched.inc();
        tracing::info!(image = %image, digest = %b.digest, cid = %b.cid, bytes = size, "blob fetched and verified");
        Ok(Some((size, kept.freeze())))
    }
}

/// Where a verified blob waits in `staging`.
fn staged_path(staging: &str, d: &Digest) -> String {
    format!("{staging}/{}/{}", d.algorithm().as_str(), d.hex())
}

fn blob_ref(repo: &RemoteRepo, image: Cid, d: &Digest) -> Result<BlobRef> {
    let cid = repo
        .json
        .cid_of(d)
        .ok_or_else(|| DiscoError::invalid(image, format!("{d} is not listed in disco.json")))?;
    Ok(BlobRef {
        digest: d.clone(),
        cid: *cid,
    })
}
