//! `s3` storage driver: files are objects in one S3 (or S3-compatible)
//! bucket, keyed by their path under `rootdirectory`, exactly as CNCF
//! Distribution's `s3` driver lays them out (so either can read the other's
//! bucket).
//!
//! - Directories are key prefixes: `list` and `walk` use paginated
//!   `ListObjectsV2` with delimiter `/`; `stat` is a `HeadObject`, falling
//!   back to a one-key listing for directories.
//! - Writers stream through multipart uploads of `chunksize` parts and hold
//!   at most one part in memory (see [`writer`] for how `close` and a later
//!   append resume).
//! - `rename` is a server-side copy (multipart copy above
//!   `multipartcopythresholdsize`, `multipartcopymaxconcurrency` part copies
//!   at a time) followed by a delete; directories move object by object.
//! - `delete` of a directory removes its objects in `DeleteObjects` batches
//!   of up to 1000 keys, one listing page at a time.
//! - `reader` streams a ranged `GetObject` and resumes it (pinned to the
//!   object's ETag) if the connection drops mid-body.
//! - `redirect_url` is a presigned `GetObject` valid for `redirectexpiry`.
//! - Throttling, 5xx and connection errors are retried by the SDK with
//!   exponential backoff (`maxattempts` attempts); a server that cannot be
//!   reached is [`StorageError::Unavailable`].

pub mod config;
mod copy;
mod error;
mod reader;
mod writer;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{
    Delete, ObjectCannedAcl, ObjectIdentifier, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

pub use config::S3Config;
use error::{error_status, map_sdk_error};

use super::{
    ByteStream, FileInfo, FileWriter, Result, StorageDriver, StorageError, WalkControl, WalkFn,
    check_path,
};

/// Content type of every object written.
const CONTENT_TYPE: &str = "application/octet-stream";
/// Keys per `ListObjectsV2` page and per `DeleteObjects` batch.
const LIST_MAX: i32 = 1000;
/// Objects copied at once when a directory is renamed.
const DIR_COPY_CONCURRENCY: usize = 8;
/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Base of the time allowed from sending a request to the first response
/// byte (S3 keeps slow copies and completions alive with whitespace, so
/// this bounds only dead servers). The SDK counts the request body's upload
/// in it, so [`read_timeout`] adds time for one part at 1 MiB/s; a stalled
/// body is caught sooner by the SDK's stalled-stream protection.
const READ_TIMEOUT_BASE: Duration = Duration::from_secs(60);

/// The read timeout for a part size.
fn read_timeout(chunksize: u64) -> Duration {
    READ_TIMEOUT_BASE + Duration::from_secs(chunksize / (1024 * 1024))
}

/// Objects in an S3 bucket.
#[derive(Clone)]
pub struct S3Driver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Driver")
            .field("bucket", &self.inner.bucket)
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

/// What every operation shares (writers keep a handle).
pub(crate) struct Inner {
    client: Client,
    bucket: String,
    /// Key prefix: empty or ending in `/`.
    prefix: String,
    cfg: S3Config,
    sse: Option<ServerSideEncryption>,
    kms_key: Option<String>,
    acl: Option<ObjectCannedAcl>,
    storage_class: Option<StorageClass>,
}

/// Size and version of an object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectMeta {
    size: u64,
    etag: Option<String>,
    modified: Option<SystemTime>,
}

/// Applies encryption, ACL and storage class to a request that creates an
/// object (`PutObject`, `CreateMultipartUpload`, `CopyObject`).
macro_rules! object_options {
    ($inner:expr, $req:expr) => {
        $req.set_server_side_encryption($inner.sse.clone())
            .set_ssekms_key_id($inner.kms_key.clone())
            .set_acl($inner.acl.clone())
            .set_storage_class($inner.storage_class.clone())
    };
}

impl S3Driver {
    /// Builds a driver from validated configuration. Makes no request: see
    /// [`S3Driver::check`] and [`S3Driver::connect`].
    pub async fn new(cfg: S3Config) -> Result<Self> {
        cfg.validate().map_err(StorageError::Other)?;
        let attempts = u32::try_from(cfg.maxattempts).unwrap_or(1);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region().to_string()))
            .retry_config(RetryConfig::standard().with_max_attempts(attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(read_timeout(cfg.chunksize))
                    .build(),
            );
        if !cfg.accesskey.is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                cfg.accesskey.clone(),
                cfg.secretkey.clone(),
                None,
                None,
                "disco-config",
            ));
        }
        let sdk = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(cfg.forcepathstyle)
            .use_dual_stack(cfg.usedualstack)
            .accelerate(cfg.accelerate)
            .use_fips(cfg.usefipsendpoint);
        if let Some(url) = cfg.endpoint_url() {
            builder = builder.endpoint_url(url);
        }
        let client = Client::from_conf(builder.build());
        let sse = cfg.encrypt.then_some(if cfg.keyid.is_empty() {
            ServerSideEncryption::Aes256
        } else {
            ServerSideEncryption::AwsKms
        });
        let kms_key = (cfg.encrypt && !cfg.keyid.is_empty()).then(|| cfg.keyid.clone());
        let acl = (cfg.objectacl != "none").then(|| ObjectCannedAcl::from(cfg.objectacl.as_str()));
        let class = cfg.storage_class_upper();
        let storage_class = (class != "NONE").then(|| StorageClass::from(class.as_str()));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                bucket: cfg.bucket.clone(),
                prefix: cfg.key_prefix(),
                cfg,
                sse,
                kms_key,
                acl,
                storage_class,
            }),
        })
    }

    /// Builds a driver and checks that the bucket is reachable with the
    /// configured credentials, so a wrong key or bucket fails at start-up
    /// with a message that says which.
    pub async fn connect(cfg: S3Config) -> Result<Self> {
        let driver = Self::new(cfg).await?;
        driver.check().await?;
        Ok(driver)
    }

    /// Lists one key under the root: fails with a clear error when the
    /// server is down, the credentials are rejected or the bucket is
    /// missing.
    pub async fn check(&self) -> Result<()> {
        let inner = &self.inner;
        inner
            .client
            .list_objects_v2()
            .bucket(&inner.bucket)
            .prefix(&inner.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| map_sdk_error("/", &inner.bucket, e))?;
        Ok(())
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The object key a storage path is stored under.
    pub fn key_for(&self, path: &str) -> Result<String> {
        check_path(path)?;
        Ok(self.inner.key(path))
    }
}

impl Inner {
    /// Key of a checked path (the root maps to the prefix itself).
    fn key(&self, path: &str) -> String {
        format!("{}{}", self.prefix, &path[1..])
    }

    /// Prefix of everything under a checked directory path.
    fn dir_prefix(&self, path: &str) -> String {
        if path == "/" {
            self.prefix.clone()
        } else {
            format!("{}{}/", self.prefix, &path[1..])
        }
    }

    /// The storage path of a key under the prefix.
    fn path_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.prefix)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return None;
        }
        Some(format!("/{rest}"))
    }

    /// `HeadObject`: `None` when there is no object at `key`.
    async fn head(&self, path: &str, key: &str) -> Result<Option<ObjectMeta>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                etag: out.e_tag().map(str::to_string),
                modified: out
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            })),
            Err(e) if error_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_sdk_error(path, &self.bucket, e)),
        }
    }

    /// Starts a multipart upload to `key`; returns its id.
    async fn create_upload(&self, path: &str, key: &str) -> Result<String> {
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(CONTENT_TYPE);
        let out = object_options!(self, req)
            .send()
            .await
            .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            StorageError::Other(format!("{path}: S3 returned no multipart upload id"))
        })
    }

    /// Aborts a multipart upload (best effort: failures are logged; a
    /// bucket lifecycle rule for incomplete uploads is the backstop).
    async fn abort_upload(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(
                bucket = %self.bucket,
                key,
                upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&e),
                "could not abort S3 multipart upload"
            );
        }
    }

    fn apply_copy_object_options(
        &self,
        req: aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder {
        object_options!(self, req)
    }

    /// `PutObject` of a whole (small) body.
    async fn put(&self, path: &str, key: &str, content: Bytes) -> Result<()> {
        let len = content.len() as i64;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .content_length(len)
            .body(content.into());
        object_options!(self, req)
            .send()
            .await
            .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
        Ok(())
    }

    /// One directory's entries (files with size and time, and
    /// subdirectories), from a paginated delimited listing.
    async fn list_entries(&self, path: &str) -> Result<Vec<FileInfo>> {
        let prefix = self.dir_prefix(path);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .delimiter("/")
            .max_keys(LIST_MAX)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error(path, &self.bucket, e))?;
            for obj in page.contents() {
                let Some(child) = obj.key().and_then(|k| self.path_of(k)) else {
                    continue;
                };
                // A "directory marker" object (`dir/`) made by other tools.
                if obj.key().is_some_and(|k| k.ends_with('/')) {
                    continue;
                }
                out.push(FileInfo {
                    path: child,
                    size: u64::try_from(obj.size().unwrap_or(0)).unwrap_or(0),
                    modified: obj
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                    is_dir: false,
                });
            }
            for p in page.common_prefixes() {
                if let Some(child) = p.prefix().and_then(|k| self.path_of(k)) {
                    out.push(FileInfo {
                        path: child,
                        size: 0,
                        modified: None,
                        is_dir: true,
                    });
                }
            }
        }
        if out.is_empty() && path != "/" {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        Ok(out)
    }

    /// Every key under a directory prefix, in key order (all pages).
    async fn keys_under(
        &self,
        path: &str,
        prefix: &str,
    ) -> Result<Vec<(String, u64, Option<String>)>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(LIST_MAX)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error(path, &self.bucket, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    out.push((
                        k.to_string(),
                        u64::try_from(obj.size().unwrap_or(0)).unwrap_or(0),
                        obj.e_tag().map(str::to_string),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// True when at least one key starts with `prefix`.
    async fn any_under(&self, path: &str, prefix: &str) -> Result<bool> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
        Ok(!out.contents().is_empty())
    }

    /// Deletes keys in `DeleteObjects` batches of up to 1000.
    async fn delete_keys(&self, path: &str, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(LIST_MAX as usize) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Other(format!("{path}: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Other(format!("{path}: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
            if let Some(first) = out.errors().first() {
                return Err(StorageError::Other(format!(
                    "{path}: S3 could not delete {} of {} keys, first {:?}: {} {}",
                    out.errors().len(),
                    batch.len(),
                    first.key().unwrap_or_default(),
                    first.code().unwrap_or_default(),
                    first.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Deletes everything under a directory prefix, page by page; returns
    /// how many keys went.
    async fn delete_prefix(&self, path: &str, prefix: &str) -> Result<usize> {
        let mut deleted = 0;
        let mut start_after: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(LIST_MAX)
                .set_start_after(start_after.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error(path, &self.bucket, e))?;
            let keys: Vec<String> = page
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            self.delete_keys(path, &keys).await?;
            deleted += keys.len();
            start_after = keys.last().cloned();
            if !page.is_truncated().unwrap_or(false) {
                return Ok(deleted);
            }
        }
    }
}

#[async_trait]
impl StorageDriver for S3Driver {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        let inner = &self.inner;
        let out = inner
            .client
            .get_object()
            .bucket(&inner.bucket)
            .key(inner.key(path))
            .send()
            .await
            .map_err(|e| map_sdk_error(path, &inner.bucket, e))?;
        let data = out.body.collect().await.map_err(|e| StorageError::Io {
            path: path.to_string(),
            source: std::io::Error::other(e),
        })?;
        Ok(data.into_bytes())
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::InvalidPath(path.to_string()));
        }
        self.inner.put(path, &self.inner.key(path), content).await
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        reader::open(self.inner.clone(), path, offset).await
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::InvalidPath(path.to_string()));
        }
        Ok(Box::new(
            writer::S3Writer::open(self.inner.clone(), path, append).await?,
        ))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        check_path(path)?;
        let dir = FileInfo {
            path: path.to_string(),
            size: 0,
            modified: None,
            is_dir: true,
        };
        if path == "/" {
            return Ok(dir);
        }
        let inner = &self.inner;
        if let Some(meta) = inner.head(path, &inner.key(path)).await? {
            return Ok(FileInfo {
                path: path.to_string(),
                size: meta.size,
                modified: meta.modified,
                is_dir: false,
            });
        }
        if inner.any_under(path, &inner.dir_prefix(path)).await? {
            return Ok(dir);
        }
        Err(StorageError::PathNotFound(path.to_string()))
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path(path)?;
        let mut names: Vec<String> = self
            .inner
            .list_entries(path)
            .await?
            .into_iter()
            .map(|e| e.path)
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        check_path(source)?;
        check_path(dest)?;
        if source == "/" || dest == "/" {
            return Err(StorageError::InvalidPath(
                "cannot rename to or from the root".into(),
            ));
        }
        if source == dest {
            return self.stat(source).await.map(|_| ());
        }
        if dest.starts_with(&format!("{source}/")) {
            return Err(StorageError::InvalidPath(format!(
                "cannot move {source} into itself ({dest})"
            )));
        }
        let inner = &self.inner;
        let src_key = inner.key(source);
        let dst_key = inner.key(dest);
        if let Some(meta) = inner.head(source, &src_key).await? {
            inner
                .copy_object(source, &src_key, &dst_key, meta.size, meta.etag.as_deref())
                .await?;
            // Whatever was at dest is replaced: a directory there goes too.
            inner.delete_prefix(dest, &inner.dir_prefix(dest)).await?;
            inner.delete_keys(source, &[src_key]).await?;
            return Ok(());
        }
        // A directory: copy every object, then drop what dest held before
        // and the sources.
        let src_prefix = inner.dir_prefix(source);
        let dst_prefix = inner.dir_prefix(dest);
        let sources = inner.keys_under(source, &src_prefix).await?;
        if sources.is_empty() {
            return Err(StorageError::PathNotFound(source.to_string()));
        }
        let mut old_dest: Vec<String> = inner
            .keys_under(dest, &dst_prefix)
            .await?
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        if inner.head(dest, &dst_key).await?.is_some() {
            old_dest.push(dst_key.clone());
        }
        let concurrency = DIR_COPY_CONCURRENCY
            .min(usize::try_from(inner.cfg.multipartcopymaxconcurrency).unwrap_or(1));
        let copies: Vec<_> = sources
            .iter()
            .map(|(key, size, etag)| {
                let inner = self.inner.clone();
                let source = source.to_string();
                let key = key.clone();
                let etag = etag.clone();
                let size = *size;
                let target = format!("{dst_prefix}{}", &key[src_prefix.len()..]);
                async move {
                    inner
                        .copy_object(&source, &key, &target, size, etag.as_deref())
                        .await?;
                    Ok::<_, StorageError>(target)
                }
            })
            .collect();
        let copied: Vec<String> = futures::stream::iter(copies)
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        let copied: std::collections::HashSet<String> = copied.into_iter().collect();
        let stale: Vec<String> = old_dest
            .into_iter()
            .filter(|k| !copied.contains(k))
            .collect();
        inner.delete_keys(dest, &stale).await?;
        let source_keys: Vec<String> = sources.into_iter().map(|(k, _, _)| k).collect();
        inner.delete_keys(source, &source_keys).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::InvalidPath(
                "refusing to delete the root".into(),
            ));
        }
        let inner = &self.inner;
        let key = inner.key(path);
        let file = inner.head(path, &key).await?.is_some();
        let under = inner.delete_prefix(path, &inner.dir_prefix(path)).await?;
        if file {
            inner.delete_keys(path, &[key]).await?;
        }
        if !file && under == 0 {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        Ok(())
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>> {
        check_path(path)?;
        let inner = &self.inner;
        let presigning = PresigningConfig::expires_in(inner.cfg.redirectexpiry)
            .map_err(|e| StorageError::Other(format!("presigning {path}: {e}")))?;
        let req = inner
            .client
            .get_object()
            .bucket(&inner.bucket)
            .key(inner.key(path))
            .presigned(presigning)
            .await
            .map_err(|e| map_sdk_error(path, &inner.bucket, e))?;
        Ok(Some(req.uri().to_string()))
    }

    async fn walk(&self, path: &str, f: &mut WalkFn<'_>) -> Result<()> {
        check_path(path)?;
        // Like the default walk, but each directory is one listing that
        // already carries sizes: no HeadObject per entry.
        let mut stack: Vec<Vec<FileInfo>> = Vec::new();
        let mut top = self.inner.list_entries(path).await?;
        sort_for_walk(&mut top);
        stack.push(top);
        while let Some(level) = stack.last_mut() {
            let Some(entry) = level.pop() else {
                stack.pop();
                continue;
            };
            match f(&entry) {
                WalkControl::Stop => return Ok(()),
                WalkControl::SkipDir => continue,
                WalkControl::Continue => {}
            }
            if entry.is_dir {
                let mut children = match self.inner.list_entries(&entry.path).await {
                    Ok(c) => c,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                sort_for_walk(&mut children);
                stack.push(children);
            }
        }
        Ok(())
    }
}

/// Sorts entries so popping from the end yields them in lexical order (a
/// file and a directory of the same name: the file first).
fn sort_for_walk(entries: &mut [FileInfo]) {
    entries.sort_unstable_by(|a, b| (&b.path, b.is_dir).cmp(&(&a.path, a.is_dir)));
}
