//! `storage.ipfs.cache`: a secondary store that mirrors the IPFS store and
//! serves pulls, so IPFS nodes do not take the pull load.
//!
//! [`CacheDriver`] layers a `cache` driver (any driver: filesystem, S3, ...)
//! over a `primary` one (the `ipfs` driver):
//!
//! - **Writes** go to the primary, then to the cache; a write succeeds only
//!   when both hold the data. Upload writers tee every chunk to both.
//! - **Reads** try the cache first. On a miss they fall back to the primary
//!   and write the file back to the cache: small files at once, blobs in the
//!   background (bounded, one fill per path, digest verified before the
//!   copy is committed). A cache that fails is logged and bypassed.
//! - If the primary lost content the cache still holds, the cache serves
//!   it; [`CacheDriver::ensure_primary`] restores the primary (the publishing
//!   layer calls it on the next push of the image).
//! - **Redirects**: [`StorageDriver::redirect_url`] gives `redirect` + the
//!   storage path when a base URL is configured, else the cache's own URL
//!   (a presigned S3 GET), and only for files the cache holds.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;

use super::{
    ByteStream, Driver, FileInfo, FileWriter, Result, StorageDriver, StorageError, WalkControl,
};
use crate::registry::digest::{Digest, Digester};

/// Background fills running at once; more misses are served from the
/// primary without a fill (the next miss retries).
pub const MAX_FILLS: usize = 4;
/// Files copied at once by [`CacheDriver::mirror_tree`].
const MIRROR_CONCURRENCY: usize = 8;

/// Cache hit and fill counters (`disco_cache_*`).
#[derive(Debug, Default, Clone)]
pub struct CacheMetrics {
    /// Reads answered by the cache.
    pub hits: Counter,
    /// Reads the cache could not answer (served by the primary).
    pub misses: Counter,
    /// Cache operations that failed and were bypassed.
    pub errors: Counter,
    /// Files copied from the primary into the cache.
    pub fills: Counter,
    /// Bytes copied from the primary into the cache.
    pub fill_bytes: Counter,
    /// Files copied from the cache back into the primary.
    pub restores: Counter,
}

impl CacheMetrics {
    /// Registers every counter with `metrics`.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        for (name, help, c) in [
            (
                "cache_hits",
                "Storage reads answered by the cache",
                &self.hits,
            ),
            (
                "cache_misses",
                "Storage reads the cache could not answer (served by IPFS)",
                &self.misses,
            ),
            (
                "cache_errors",
                "Cache operations that failed and were bypassed",
                &self.errors,
            ),
            (
                "cache_fills",
                "Files copied from IPFS into the cache",
                &self.fills,
            ),
            (
                "cache_fill_bytes",
                "Bytes copied from IPFS into the cache",
                &self.fill_bytes,
            ),
            (
                "cache_restores",
                "Files copied from the cache back into IPFS",
                &self.restores,
            ),
        ] {
            metrics.register(name, help, c.clone());
        }
    }
}

/// A primary driver mirrored by a cache driver. Cheap to clone.
#[derive(Clone)]
pub struct CacheDriver {
    inner: Arc<Inner>,
}

struct Inner {
    /// None in cache-only mode (`storage.ipfs.cacheonly`).
    primary: Option<Driver>,
    cache: Driver,
    redirect: Option<String>,
    fills: Mutex<HashSet<String>>,
    fill_slots: Arc<Semaphore>,
    metrics: CacheMetrics,
}

impl CacheDriver {
    /// `cache` mirroring `primary` (none: the cache alone, as in
    /// cache-only mode); blob downloads redirect to `redirect` + the storage
    /// path when it is set.
    pub fn new(primary: Option<Driver>, cache: Driver, redirect: Option<String>) -> Self {
        let redirect = redirect.map(|r| if r.ends_with('/') { r } else { format!("{r}/") });
        CacheDriver {
            inner: Arc::new(Inner {
                primary,
                cache,
                redirect,
                fills: Mutex::new(HashSet::new()),
                fill_slots: Arc::new(Semaphore::new(MAX_FILLS)),
                metrics: CacheMetrics::default(),
            }),
        }
    }

    /// The counters.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// The primary (IPFS) driver; none in cache-only mode.
    pub fn primary(&self) -> Option<&Driver> {
        self.inner.primary.as_ref()
    }

    /// The cache driver.
    pub fn cache(&self) -> &Driver {
        &self.inner.cache
    }

    fn cache_failed(&self, op: &str, path: &str, e: &StorageError) {
        self.inner.metrics.errors.inc();
        tracing::warn!(op, path, error = %e, "cache failed; using IPFS");
    }

    /// Copies `path` from the primary into the cache unless the cache holds
    /// it. Returns true when it copied.
    pub async fn ensure_cached(&self, path: &str) -> Result<bool> {
        let Some(primary) = self.primary() else {
            return Ok(false);
        };
        if is_file(&self.inner.cache, path).await? {
            return Ok(false);
        }
        let n = copy_file(primary, &self.inner.cache, path).await?;
        self.inner.metrics.fills.inc();
        self.inner.metrics.fill_bytes.inc_by(n);
        Ok(true)
    }

    /// Copies `path` from the cache back into the primary unless the
    /// primary holds it. Returns true when it copied.
    pub async fn ensure_primary(&self, path: &str) -> Result<bool> {
        let Some(primary) = self.primary() else {
            return Ok(false);
        };
        if is_file(primary, path).await? {
            return Ok(false);
        }
        copy_file(&self.inner.cache, primary, path).await?;
        self.inner.metrics.restores.inc();
        tracing::info!(path, "restored into IPFS from the cache");
        Ok(true)
    }

    /// Copies every file under `dir` in the primary that the cache lacks.
    pub async fn mirror_tree(&self, dir: &str) -> Result<()> {
        let Some(primary) = self.primary() else {
            return Ok(());
        };
        let mut files = Vec::new();
        primary
            .walk(dir, &mut |info: &FileInfo| {
                if !info.is_dir {
                    files.push(info.path.clone());
                }
                WalkControl::Continue
            })
            .await?;
        stream::iter(files)
            .map(|p| async move { self.ensure_cached(&p).await.map(|_| ()) })
            .buffer_unordered(MIRROR_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Starts copying `path` into the cache in the background, unless a
    /// fill of it is running or every fill slot is busy.
    fn spawn_fill(&self, path: &str) {
        let Ok(permit) = self.inner.fill_slots.clone().try_acquire_owned() else {
            return;
        };
        if !self.inner.fills.lock().insert(path.to_string()) {
            return;
        }
        let this = self.clone();
        let path = path.to_string();
        tokio::spawn(async move {
            match this.ensure_cached(&path).await {
                Ok(true) => tracing::debug!(path, "cache filled from IPFS"),
                Ok(false) => {}
                Err(e) => {
                    this.inner.metrics.errors.inc();
                    tracing::warn!(path, error = %e, "cache fill failed");
                }
            }
            this.inner.fills.lock().remove(&path);
            drop(permit);
        });
    }
}

/// True when `path` is a file in `d`.
async fn is_file(d: &Driver, path: &str) -> Result<bool> {
    match d.stat(path).await {
        Ok(info) => Ok(!info.is_dir),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The digest a blob's `data` path names
/// (`.../blobs/<alg>/<xx>/<hex>/data`), if it is one.
pub fn blob_path_digest(path: &str) -> Option<Digest> {
    let mut it = path.rsplit('/');
    let (data, hex, _prefix, alg, blobs) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if data != "data" || blobs != "blobs" {
        return None;
    }
    format!("{alg}:{hex}").parse().ok()
}

/// Streams `path` from `from` into `to`, committing only a complete copy
/// (and, for a blob's `data`, only one whose bytes hash to its digest).
/// Returns the bytes copied.
pub async fn copy_file(from: &Driver, to: &Driver, path: &str) -> Result<u64> {
    let expect = blob_path_digest(path);
    let mut hasher = expect.as_ref().map(|d| Digester::new(d.algorithm()));
    let mut src = from.reader(path, 0).await?;
    let mut w = to.writer(path, false).await?;
    let copied: Result<()> = async {
        while let Some(chunk) = src
            .try_next()
            .await
            .map_err(|e| StorageError::io(path, e))?
        {
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
            w.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = w.cancel().await;
        return Err(e);
    }
    if let (Some(expect), Some(h)) = (expect, hasher) {
        let got = h.finish();
        if got != expect {
            let _ = w.cancel().await;
            return Err(StorageError::Other(format!(
                "{path}: content hashes to {got}, not copied"
            )));
        }
    }
    let n = w.size();
    w.commit().await?;
    Ok(n)
}

/// Tees an upload to the primary and the cache. The cache side is dropped
/// (and the file copied when it is moved into place) if it ever disagrees
/// with the primary.
struct TeeWriter {
    path: String,
    primary: Box<dyn FileWriter>,
    cache: Option<Box<dyn FileWriter>>,
}

#[async_trait]
impl FileWriter for TeeWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        match self.cache.as_mut() {
            Some(c) => {
                let (p, c) = tokio::join!(self.primary.write(data.clone()), c.write(data));
                p?;
                c
            }
            None => self.primary.write(data).await,
        }
    }

    fn size(&self) -> u64 {
        self.primary.size()
    }

    async fn close(self: Box<Self>) -> Result<()> {
        let this = *self;
        this.primary.close().await?;
        if let Some(c) = this.cache {
            c.close().await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let this = *self;
        this.primary.commit().await?;
        if let Some(c) = this.cache {
            c.commit().await?;
        }
        Ok(())
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        let this = *self;
        let p = this.primary.cancel().await;
        if let Some(c) = this.cache
            && let Err(e) = c.cancel().await
        {
            tracing::warn!(path = %this.path, error = %e, "cannot cancel the cache copy of an upload");
        }
        p
    }
}

/// Merges the results of an operation done on both drivers: fine when one
/// succeeded and the other found nothing.
fn both(primary: Result<()>, cache: Result<()>) -> Result<()> {
    match (primary, cache) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(e)) | (Err(e), Ok(())) if e.is_not_found() => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

#[async_trait]
impl StorageDriver for CacheDriver {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.get_content(path).await;
        };
        let m = &self.inner.metrics;
        match self.inner.cache.get_content(path).await {
            Ok(b) => {
                m.hits.inc();
                return Ok(b);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => self.cache_failed("get_content", path, &e),
        }
        m.misses.inc();
        let b = primary.get_content(path).await?;
        match self.inner.cache.put_content(path, b.clone()).await {
            Ok(()) => {
                m.fills.inc();
                m.fill_bytes.inc_by(b.len() as u64);
            }
            Err(e) => self.cache_failed("fill", path, &e),
        }
        Ok(b)
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        if let Some(primary) = self.primary() {
            primary.put_content(path, content.clone()).await?;
        }
        self.inner.cache.put_content(path, content).await
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.reader(path, offset).await;
        };
        match self.inner.cache.reader(path, offset).await {
            Ok(s) => {
                self.inner.metrics.hits.inc();
                return Ok(s);
            }
            Err(e) if e.is_not_found() => {}
            // Past the end in the cache is past the end anywhere.
            Err(e @ StorageError::InvalidOffset { .. }) => return Err(e),
            Err(e) => self.cache_failed("reader", path, &e),
        }
        self.inner.metrics.misses.inc();
        let s = primary.reader(path, offset).await?;
        self.spawn_fill(path);
        Ok(s)
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.writer(path, append).await;
        };
        let primary = primary.writer(path, append).await?;
        let cache = match self.inner.cache.writer(path, append).await {
            Ok(c) if c.size() == primary.size() => Some(c),
            Ok(c) => {
                tracing::debug!(path, "cache copy of an upload is out of step; dropping it");
                c.cancel().await?;
                None
            }
            Err(e) => {
                let _ = primary.close().await;
                return Err(e);
            }
        };
        Ok(Box::new(TeeWriter {
            path: path.to_string(),
            primary,
            cache,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.stat(path).await;
        };
        match self.inner.cache.stat(path).await {
            Ok(info) => return Ok(info),
            Err(e) if e.is_not_found() => {}
            Err(e) => self.cache_failed("stat", path, &e),
        }
        primary.stat(path).await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.list(path).await;
        };
        let (p, c) = tokio::join!(primary.list(path), self.inner.cache.list(path));
        let c = match c {
            Ok(c) => Some(c),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.cache_failed("list", path, &e);
                None
            }
        };
        match (p, c) {
            (Ok(mut p), Some(c)) => {
                let seen: HashSet<String> = p.iter().cloned().collect();
                p.extend(c.into_iter().filter(|x| !seen.contains(x)));
                Ok(p)
            }
            (Ok(p), None) => Ok(p),
            (Err(e), Some(c)) => {
                if !e.is_not_found() {
                    tracing::warn!(path, error = %e, "listing IPFS failed; using the cache");
                }
                Ok(c)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.rename(source, dest).await;
        };
        match primary.rename(source, dest).await {
            Ok(()) => match self.inner.cache.rename(source, dest).await {
                Ok(()) => Ok(()),
                // The cache never had it (or dropped an out-of-step upload):
                // copy the result so both hold it.
                Err(e) if e.is_not_found() => {
                    let info = primary.stat(dest).await?;
                    if info.is_dir {
                        self.mirror_tree(dest).await
                    } else {
                        self.ensure_cached(dest).await.map(|_| ())
                    }
                }
                Err(e) => Err(e),
            },
            // IPFS lost the source the cache still has.
            Err(e) if e.is_not_found() => {
                self.inner.cache.rename(source, dest).await?;
                if !self.inner.cache.stat(dest).await?.is_dir {
                    self.ensure_primary(dest).await?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let Some(primary) = self.primary() else {
            return self.inner.cache.delete(path).await;
        };
        let p = primary.delete(path).await;
        let c = self.inner.cache.delete(path).await;
        both(p, c)
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>> {
        match is_file(&self.inner.cache, path).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                self.cache_failed("redirect", path, &e);
                return Ok(None);
            }
        }
        match &self.inner.redirect {
            Some(base) => Ok(Some(format!("{base}{}", path.trim_start_matches('/')))),
            None => self.inner.cache.redirect_url(path).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::inmemory::InMemoryDriver;

    fn pair() -> (Driver, Driver, CacheDriver) {
        let p: Driver = Arc::new(InMemoryDriver::new());
        let c: Driver = Arc::new(InMemoryDriver::new());
        let d = CacheDriver::new(Some(p.clone()), c.clone(), None);
        (p, c, d)
    }

    async fn fixture() -> crate::storage::testsuite::Fixture {
        let (_, _, d) = pair();
        crate::storage::testsuite::Fixture::new(d, ())
    }

    crate::storage_driver_suite!(fixture());

    fn blob_path(data: &[u8]) -> String {
        let d = Digest::sha256(data);
        format!(
            "/docker/registry/v2/blobs/sha256/{}/{}/data",
            &d.hex()[..2],
            d.hex()
        )
    }

    #[test]
    fn blob_paths_name_their_digest() {
        let p = blob_path(b"x");
        assert_eq!(blob_path_digest(&p), Some(Digest::sha256(b"x")));
        assert_eq!(
            blob_path_digest("/docker/registry/v2/blobs/sha256/ab/zz/data"),
            None
        );
        assert_eq!(blob_path_digest("/a/b"), None);
        assert_eq!(
            blob_path_digest("/docker/registry/v2/repositories/a/b/c/data"),
            None
        );
    }

    #[tokio::test]
    async fn writes_reach_both_and_reads_fill_the_cache() {
        let (p, c, d) = pair();
        d.put_content("/a", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(p.get_content("/a").await.unwrap(), "1");
        assert_eq!(c.get_content("/a").await.unwrap(), "1");

        // A miss is served by the primary and written back.
        p.put_content("/b", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!(d.get_content("/b").await.unwrap(), "2");
        assert_eq!(c.get_content("/b").await.unwrap(), "2");
        assert_eq!(d.metrics().misses.get(), 1);

        // Content the primary lost is served by the cache and restored.
        p.delete("/a").await.unwrap();
        assert_eq!(d.get_content("/a").await.unwrap(), "1");
        assert!(d.ensure_primary("/a").await.unwrap());
        assert_eq!(p.get_content("/a").await.unwrap(), "1");

        // Uploads tee to both, appends included.
        let mut w = d.writer("/u", false).await.unwrap();
        w.write(Bytes::from_static(b"ab")).await.unwrap();
        w.close().await.unwrap();
        let mut w = d.writer("/u", true).await.unwrap();
        w.write(Bytes::from_static(b"cd")).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(c.get_content("/u").await.unwrap(), "abcd");
        assert_eq!(p.get_content("/u").await.unwrap(), "abcd");
    }

    #[tokio::test]
    async fn blob_fills_are_verified_and_renames_keep_both_complete() {
        let (p, c, d) = pair();
        let good = blob_path(b"layer");
        p.put_content(&good, Bytes::from_static(b"layer"))
            .await
            .unwrap();
        let s = d.reader(&good, 0).await.unwrap();
        let got: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(got.concat(), b"layer");
        // The background fill lands.
        for _ in 0..200 {
            if c.stat(&good).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(c.get_content(&good).await.unwrap(), "layer");

        // Bytes that do not match the path's digest are never copied.
        let bad = blob_path(b"other");
        p.put_content(&bad, Bytes::from_static(b"corrupt"))
            .await
            .unwrap();
        let err = d.ensure_cached(&bad).await.unwrap_err();
        assert!(err.to_string().contains("hashes to"), "{err}");
        assert!(c.stat(&bad).await.unwrap_err().is_not_found());

        // An upload the cache lost is copied when it is moved into place.
        p.put_content("/up/data", Bytes::from_static(b"zz"))
            .await
            .unwrap();
        d.rename("/up/data", "/final/data").await.unwrap();
        assert_eq!(c.get_content("/final/data").await.unwrap(), "zz");
        assert_eq!(p.get_content("/final/data").await.unwrap(), "zz");
    }

    #[tokio::test]
    async fn redirects_only_for_cached_files() {
        let p: Driver = Arc::new(InMemoryDriver::new());
        let c: Driver = Arc::new(InMemoryDriver::new());
        let d = CacheDriver::new(
            Some(p.clone()),
            c.clone(),
            Some("http://cdn.example/x".into()),
        );
        p.put_content("/only/primary", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(d.redirect_url("/only/primary").await.unwrap(), None);
        d.put_content("/both", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(
            d.redirect_url("/both").await.unwrap().as_deref(),
            Some("http://cdn.example/x/both")
        );
    }
}
