//! `ipfs` storage driver: the registry layout as an MFS tree under a root
//! directory, over any [`Ipfs`] backend (Kubo nodes or the embedded node).
//!
//! - Whole files (`put_content`) and committed writers are imported with the
//!   backend's canonical `files_write`, so every file has exactly the
//!   `ipfs add --cid-version=1` DAG of its bytes, however it was written.
//! - Writers stage their bytes in a local [spool](spool) until `commit`,
//!   which imports them once; `close` keeps the spool file so a later
//!   append (a resumed upload, also after a restart) continues it. Spooled
//!   files are visible to `stat`, `list`, `reader` and friends as if they
//!   were in MFS.
//! - `rename` is an MFS move: a committed upload moved into `blobs/` is
//!   never imported again.
//! - MFS has no atomic replace, so a replace is remove-then-link; per-path
//!   locks make it atomic for the readers of this process.

pub mod backend;
pub mod config;
mod locks;
mod preimport;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt, stream};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use self::preimport::PreImport;

pub use self::config::IpfsStorageConfig;
use self::locks::Locks;
use self::spool::Spool;
use super::{
    ByteStream, FileInfo, FileWriter, Result, StorageDriver, StorageError, WalkControl, WalkFn,
    check_path, join, parent,
};
use crate::ipfs::kubo::{KuboClient, Router};
use crate::ipfs::{EntryKind, Ipfs, IpfsError, WriteOptions};

/// Read buffer for spooled files.
const READ_CHUNK: usize = 256 * 1024;
/// Tries of an MFS write or move that another process raced (see
/// [`Inner::import`]).
const WRITE_ATTEMPTS: u32 = 5;
/// Largest file `get_content` reads into memory.
const MAX_CONTENT: usize = 256 * 1024 * 1024;

/// Maps an IPFS error at `path` to the storage error every driver reports.
pub fn storage_error(path: &str, e: IpfsError) -> StorageError {
    match e {
        IpfsError::NotFound(_) | IpfsError::NotADirectory(_) | IpfsError::NotAFile(_) => {
            StorageError::PathNotFound(path.to_string())
        }
        IpfsError::Timeout(m) => StorageError::Timeout(m),
        IpfsError::Unavailable(m) => StorageError::Unavailable(m),
        other => StorageError::Other(format!("{path}: {other}")),
    }
}

fn spool_error(path: &str, e: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_string(),
        source: e,
    }
}

/// The Kubo backend `cfg` describes: one node, or a [`Router`] over several.
pub fn kubo_backend(cfg: &crate::ipfs::kubo::KuboConfig) -> crate::ipfs::Result<Arc<dyn Ipfs>> {
    match cfg.nodes.as_slice() {
        [] => Err(IpfsError::Invalid(
            "storage.ipfs.router.nodes is empty".into(),
        )),
        [one] => Ok(Arc::new(KuboClient::new(&one.url, cfg)?)),
        _ => Ok(Arc::new(Router::new(cfg)?)),
    }
}

struct Inner {
    ipfs: Arc<dyn Ipfs>,
    root: String,
    spool: Spool,
    locks: Locks,
    /// Import while writing (the embedded backend: `add` and MFS share
    /// one store, so the result can be linked anywhere).
    preimport: bool,
    parked: preimport::Parked,
    /// Commits done by linking an import that ran alongside the writes.
    preimported: std::sync::atomic::AtomicU64,
}

/// The `ipfs` storage driver.
#[derive(Clone)]
pub struct IpfsDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IpfsDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpfsDriver")
            .field("backend", &self.inner.ipfs.name())
            .field("root", &self.inner.root)
            .finish()
    }
}

impl IpfsDriver {
    /// A driver over `ipfs` with `cfg`'s root and spool directories. Does
    /// not contact the backend.
    pub async fn new(ipfs: Arc<dyn Ipfs>, cfg: &IpfsStorageConfig) -> Result<Self> {
        let root = cfg.rootdirectory.trim_end_matches('/');
        let root = if root.is_empty() { "/" } else { root };
        check_path(root).map_err(|_| {
            StorageError::InvalidPath(format!(
                "storage.ipfs.rootdirectory {:?} is not an absolute path",
                cfg.rootdirectory
            ))
        })?;
        let dir = cfg.spool_dir();
        let spool = Spool::open(&dir, root)
            .await
            .map_err(|e| spool_error(&dir.display().to_string(), e))?;
        let preimport = ipfs.name() == "embedded";
        Ok(Self {
            inner: Arc::new(Inner {
                ipfs,
                root: root.to_string(),
                spool,
                locks: Locks::new(),
                preimport,
                parked: preimport::Parked::default(),
                preimported: Default::default(),
            }),
        })
    }

    /// A driver over the Kubo nodes of `cfg.router`.
    pub async fn from_config(cfg: &IpfsStorageConfig) -> Result<Self> {
        let router = cfg
            .router
            .as_ref()
            .ok_or_else(|| StorageError::Other("storage.ipfs.router is not configured".into()))?;
        let ipfs = kubo_backend(router).map_err(|e| storage_error("/", e))?;
        Self::new(ipfs, cfg).await
    }

    /// Files committed by linking the import that ran while they were
    /// written (instead of importing the spool at commit).
    pub fn preimported(&self) -> u64 {
        self.inner
            .preimported
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The IPFS backend.
    pub fn ipfs(&self) -> &Arc<dyn Ipfs> {
        &self.inner.ipfs
    }

    /// The MFS path of a storage path.
    pub fn mfs_path(&self, path: &str) -> String {
        self.inner.mfs(path)
    }
}

impl Inner {
    fn mfs(&self, path: &str) -> String {
        match (self.root.as_str(), path) {
            ("/", p) => p.to_string(),
            (r, "/") => r.to_string(),
            (r, p) => format!("{r}{p}"),
        }
    }

    /// Stat of a committed (MFS) path.
    /// Whether `a` and `b` are both in MFS with the same root CID.
    async fn same_content(&self, a: &str, b: &str) -> bool {
        let (ma, mb) = (self.mfs(a), self.mfs(b));
        let (sa, sb) = futures::join!(self.ipfs.files_stat(&ma), self.ipfs.files_stat(&mb));
        matches!((sa, sb), (Ok(x), Ok(y)) if x.cid == y.cid)
    }

    async fn mfs_stat(&self, path: &str) -> Result<FileInfo> {
        match self.ipfs.files_stat(&self.mfs(path)).await {
            Ok(st) => Ok(FileInfo {
                path: path.to_string(),
                size: st.size,
                modified: None,
                is_dir: st.kind == EntryKind::Directory,
            }),
            // The root exists before anything was written to it.
            Err(IpfsError::NotFound(_)) if path == "/" => Ok(dir_info(path)),
            Err(e) => Err(storage_error(path, e)),
        }
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        if let Some(size) = self
            .spool
            .size(path)
            .await
            .map_err(|e| spool_error(path, e))?
        {
            return Ok(FileInfo {
                path: path.to_string(),
                size,
                modified: None,
                is_dir: false,
            });
        }
        match self.mfs_stat(path).await {
            Err(StorageError::PathNotFound(_)) if !self.spool.children(path).is_empty() => {
                Ok(dir_info(path))
            }
            other => other,
        }
    }

    /// Children of a directory with their kinds and sizes, spool merged in.
    async fn entries(&self, path: &str) -> Result<Vec<FileInfo>> {
        if self.spool.contains(path) {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        let spooled = self.spool.children(path);
        let mut out: std::collections::BTreeMap<String, FileInfo> = Default::default();
        match self.ipfs.files_ls(&self.mfs(path)).await {
            Ok(entries) => {
                // js-ipfs lists a file as itself: tell that from a
                // directory holding a file of the same name.
                if let [only] = entries.as_slice()
                    && only.kind == EntryKind::File
                    && path.rsplit('/').next() == Some(only.name.as_str())
                    && !self.mfs_stat(path).await?.is_dir
                {
                    return Err(StorageError::PathNotFound(path.to_string()));
                }
                for e in entries {
                    let full = join(path, &e.name);
                    out.insert(
                        e.name,
                        FileInfo {
                            path: full,
                            size: e.size,
                            modified: None,
                            is_dir: e.kind == EntryKind::Directory,
                        },
                    );
                }
            }
            Err(IpfsError::NotFound(_)) if !spooled.is_empty() || path == "/" => {}
            Err(e) => return Err(storage_error(path, e)),
        }
        for (name, is_dir) in spooled {
            let full = join(path, &name);
            let size = if is_dir {
                0
            } else {
                self.spool
                    .size(&full)
                    .await
                    .map_err(|e| spool_error(&full, e))?
                    .unwrap_or(0)
            };
            let entry = out.entry(name).or_insert(FileInfo {
                path: full,
                size,
                modified: None,
                is_dir,
            });
            if !is_dir {
                // A spooled file shadows the committed one.
                entry.size = size;
                entry.is_dir = false;
            }
        }
        Ok(out.into_values().collect())
    }

    /// Imports `data` canonically at `path`, replacing what is there.
    async fn import<F, Fut>(&self, path: &str, mut data: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<ByteStream>>,
    {
        let opts = WriteOptions {
            create: true,
            truncate: true,
            parents: true,
            offset: 0,
        };
        // Another process writing beside this one (replicas sharing Kubo
        // nodes) can create a parent directory or the file itself between
        // the node's check and its write: "already exists". The write is
        // idempotent, so it is made again with a fresh body.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .ipfs
                .files_write(&self.mfs(path), data().await?, opts.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(IpfsError::AlreadyExists(m)) if attempt < WRITE_ATTEMPTS => {
                    tracing::debug!(%path, attempt, error = %m, "concurrent MFS write; writing again");
                    tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
                }
                Err(IpfsError::NotADirectory(m)) => {
                    return Err(StorageError::InvalidPath(format!(
                        "{path}: a parent is a file ({m})"
                    )));
                }
                Err(IpfsError::NotAFile(m)) => {
                    return Err(StorageError::InvalidPath(format!(
                        "{path} is a directory ({m})"
                    )));
                }
                Err(e) => return Err(storage_error(path, e)),
            }
        }
    }

    /// Removes `path` from MFS; `Ok(false)` if it was not there.
    async fn mfs_remove(&self, path: &str) -> Result<bool> {
        match self.ipfs.files_rm(&self.mfs(path), true).await {
            Ok(()) => Ok(true),
            Err(IpfsError::NotFound(_)) | Err(IpfsError::NotADirectory(_)) => Ok(false),
            Err(e) => Err(storage_error(path, e)),
        }
    }

    /// Removes spooled files at or under `path`; how many there were.
    async fn spool_remove(&self, path: &str) -> Result<usize> {
        let paths = self.spool.paths_at_or_under(path);
        for p in &paths {
            self.spool.remove(p).await.map_err(|e| spool_error(p, e))?;
        }
        Ok(paths.len())
    }
}

fn dir_info(path: &str) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        size: 0,
        modified: None,
        is_dir: true,
    }
}

fn not_root(path: &str) -> Result<()> {
    if path == "/" {
        Err(StorageError::InvalidPath(
            "the root is a directory, not a file".into(),
        ))
    } else {
        Ok(())
    }
}

#[async_trait]
impl StorageDriver for IpfsDriver {
    fn name(&self) -> &'static str {
        "ipfs"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        let i = &self.inner;
        let mut s = {
            let _guard = i.locks.read(path).await;
            if i.spool.contains(path) {
                drop(_guard);
                self.reader(path, 0).await?
            } else {
                // One call: a directory or a missing path is an error of
                // the read itself.
                match i.ipfs.files_read(&i.mfs(path), 0, None).await {
                    Ok(s) => s,
                    Err(e) => return Err(storage_error(path, e)),
                }
            }
        };
        let mut out = BytesMut::new();
        while let Some(chunk) = s.try_next().await.map_err(|e| read_error(path, e))? {
            if out.len() + chunk.len() > MAX_CONTENT {
                return Err(StorageError::Other(format!(
                    "{path} is larger than {MAX_CONTENT} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        check_path(path)?;
        not_root(path)?;
        let i = &self.inner;
        let _guard = i.locks.write(&[path]).await;
        i.spool
            .remove(path)
            .await
            .map_err(|e| spool_error(path, e))?;
        i.import(path, || {
            let c = content.clone();
            async move { Ok(stream::once(async move { Ok(c) }).boxed()) }
        })
        .await
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        check_path(path)?;
        let i = &self.inner;
        let _guard = i.locks.read(path).await;
        if i.spool.contains(path) {
            let file_path = i.spool.data_file(path);
            let mut file = tokio::fs::File::open(&file_path)
                .await
                .map_err(|e| StorageError::io(path, e))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| spool_error(path, e))?
                .len();
            if offset > len {
                return Err(StorageError::InvalidOffset {
                    path: path.to_string(),
                    offset,
                });
            }
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| spool_error(path, e))?;
            return Ok(ReaderStream::with_capacity(file, READ_CHUNK).boxed());
        }
        let st = i.mfs_stat(path).await?;
        if st.is_dir {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        if offset > st.size {
            return Err(StorageError::InvalidOffset {
                path: path.to_string(),
                offset,
            });
        }
        if offset == st.size {
            return Ok(stream::empty().boxed());
        }
        i.ipfs
            .files_read(&i.mfs(path), offset, None)
            .await
            .map_err(|e| storage_error(path, e))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        check_path(path)?;
        not_root(path)?;
        let i = &self.inner;
        let spooled = i.spool.contains(path);
        let (mut file, size) = if append && !spooled {
            // Continue a committed file: bring its bytes into the spool.
            match i.mfs_stat(path).await {
                Ok(st) if st.is_dir => {
                    return Err(StorageError::InvalidPath(format!("{path} is a directory")));
                }
                Ok(st) => {
                    let (mut file, _) = i
                        .spool
                        .open_append(path, true)
                        .await
                        .map_err(|e| spool_error(path, e))?;
                    if st.size > 0 {
                        let mut s = i
                            .ipfs
                            .files_read(&i.mfs(path), 0, None)
                            .await
                            .map_err(|e| storage_error(path, e))?;
                        while let Some(chunk) =
                            s.try_next().await.map_err(|e| read_error(path, e))?
                        {
                            file.write_all(&chunk)
                                .await
                                .map_err(|e| spool_error(path, e))?;
                        }
                    }
                    (file, st.size)
                }
                Err(StorageError::PathNotFound(_)) => i
                    .spool
                    .open_append(path, true)
                    .await
                    .map_err(|e| spool_error(path, e))?,
                Err(e) => return Err(e),
            }
        } else {
            i.spool
                .open_append(path, !append)
                .await
                .map_err(|e| spool_error(path, e))?
        };
        file.flush().await.map_err(|e| spool_error(path, e))?;
        let pre = if !i.preimport {
            None
        } else if append && spooled {
            i.parked
                .take(path, size)
                .or_else(|| (size == 0).then(|| PreImport::start(i.ipfs.clone())))
        } else {
            i.parked.drop_under(path);
            (size == 0).then(|| PreImport::start(i.ipfs.clone()))
        };
        Ok(Box::new(IpfsWriter {
            driver: self.clone(),
            path: path.to_string(),
            file,
            size,
            pre,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        check_path(path)?;
        let _guard = self.inner.locks.read(path).await;
        self.inner.stat(path).await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path(path)?;
        Ok(self
            .inner
            .entries(path)
            .await?
            .into_iter()
            .map(|e| e.path)
            .collect())
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        check_path(source)?;
        check_path(dest)?;
        not_root(source)?;
        not_root(dest)?;
        let i = &self.inner;
        if source == dest {
            return i.stat(source).await.map(|_| ());
        }
        if dest.starts_with(&format!("{source}/")) {
            return Err(StorageError::InvalidPath(format!(
                "cannot move {source} into itself ({dest})"
            )));
        }
        let _guard = i.locks.write(&[source, dest]).await;
        i.parked.drop_under(source);
        i.parked.drop_under(dest);
        let spooled = i.spool.paths_at_or_under(source);
        let in_mfs = match i.mfs_stat(source).await {
            Ok(_) => true,
            Err(StorageError::PathNotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if !in_mfs && spooled.is_empty() {
            return Err(StorageError::PathNotFound(source.to_string()));
        }
        // The same bytes already at the destination (another process moved
        // the same content there, e.g. replicas completing one blob) stay:
        // removing them first would leave a moment without the file.
        if in_mfs && spooled.is_empty() && i.same_content(source, dest).await {
            i.mfs_remove(source).await?;
            return Ok(());
        }
        // Whatever is at the destination is replaced.
        i.spool_remove(dest).await?;
        i.mfs_remove(dest).await?;
        if in_mfs {
            let p = parent(dest);
            if p != "/" || i.root != "/" {
                i.ipfs
                    .files_mkdir(&i.mfs(p), true)
                    .await
                    .map_err(|e| storage_error(dest, e))?;
            }
            // Another process may move the same content to `dest` at the
            // same time (replicas completing one blob): replace it again.
            let mut attempt = 0;
            loop {
                attempt += 1;
                match i.ipfs.files_mv(&i.mfs(source), &i.mfs(dest)).await {
                    Ok(()) => break,
                    Err(IpfsError::AlreadyExists(_)) if attempt < WRITE_ATTEMPTS => {
                        if i.same_content(source, dest).await {
                            i.mfs_remove(source).await?;
                            break;
                        }
                        i.mfs_remove(dest).await?;
                    }
                    Err(e) => return Err(storage_error(source, e)),
                }
            }
        }
        for p in spooled {
            let to = format!("{dest}{}", &p[source.len()..]);
            i.spool
                .rename(&p, &to)
                .await
                .map_err(|e| spool_error(&p, e))?;
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_path(path)?;
        if path == "/" {
            return Err(StorageError::InvalidPath(
                "refusing to delete the root".into(),
            ));
        }
        let i = &self.inner;
        let _guard = i.locks.write(&[path]).await;
        i.parked.drop_under(path);
        let spooled = i.spool_remove(path).await?;
        let removed = i.mfs_remove(path).await?;
        if spooled == 0 && !removed {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        Ok(())
    }

    async fn walk(&self, path: &str, f: &mut WalkFn<'_>) -> Result<()> {
        check_path(path)?;
        // Depth-first in lexical order, one listing per directory (the
        // listing carries kinds and sizes: no stat per entry).
        let mut stack: Vec<Vec<FileInfo>> = Vec::new();
        let mut top = self.inner.entries(path).await?;
        top.reverse();
        stack.push(top);
        while let Some(level) = stack.last_mut() {
            let Some(info) = level.pop() else {
                stack.pop();
                continue;
            };
            match f(&info) {
                WalkControl::Stop => return Ok(()),
                WalkControl::SkipDir => continue,
                WalkControl::Continue => {}
            }
            if info.is_dir {
                let mut children = match self.inner.entries(&info.path).await {
                    Ok(c) => c,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                children.reverse();
                stack.push(children);
            }
        }
        Ok(())
    }
}

/// An error from a stream of this driver's backend, typed again.
fn read_error(path: &str, e: std::io::Error) -> StorageError {
    storage_error(path, crate::ipfs::kubo::rpc::from_io(e))
}

impl IpfsWriter {
    /// Commits through the import that ran alongside the writes: the file
    /// is linked from `/ipfs/<cid>` (replacing what was at the path), then
    /// unpinned, and the spool copy removed.
    async fn link_preimported(&self, p: PreImport) -> Result<()> {
        let path = &self.path;
        let i = &self.driver.inner;
        let cid = p.finish().await.map_err(|e| storage_error(path, e))?;
        let linked = async {
            let _guard = i.locks.write(&[path]).await;
            i.mfs_remove(path).await?;
            i.ipfs
                .files_cp(
                    &format!("/ipfs/{}", crate::ipfs::cid_v1_string(&cid)),
                    &i.mfs(path),
                    true,
                )
                .await
                .map_err(|e| match e {
                    IpfsError::NotADirectory(m) => {
                        StorageError::InvalidPath(format!("{path}: a parent is a file ({m})"))
                    }
                    e => storage_error(path, e),
                })?;
            i.spool.remove(path).await.map_err(|e| spool_error(path, e))
        }
        .await;
        if let Err(e) = i.ipfs.pin_rm(&cid).await {
            tracing::warn!(%cid, error = %e, "cannot unpin an imported upload");
        }
        linked
    }
}

/// A writer staging bytes in the spool.
struct IpfsWriter {
    driver: IpfsDriver,
    path: String,
    file: tokio::fs::File,
    size: u64,
    /// The import running alongside, if any (see [`preimport`]).
    pre: Option<PreImport>,
}

#[async_trait]
impl FileWriter for IpfsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.file
            .write_all(&data)
            .await
            .map_err(|e| spool_error(&self.path, e))?;
        self.size += data.len() as u64;
        if let Some(p) = self.pre.as_mut()
            && !p.feed(data).await
        {
            tracing::debug!(path = %self.path, "import alongside the write stopped; importing at commit");
            self.pre = None;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.file
            .flush()
            .await
            .map_err(|e| spool_error(&self.path, e))?;
        if let Some(p) = self.pre.take() {
            self.driver.inner.parked.park(&self.path, p);
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        self.file.flush().await.map_err(|e| spool_error(&path, e))?;
        if let Some(p) = self.pre.take()
            && p.size == self.size
        {
            match self.link_preimported(p).await {
                Ok(()) => {
                    self.driver
                        .inner
                        .preimported
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(path = %path, error = %e, "linking the imported file failed; importing the spool")
                }
            }
        }
        self.file
            .sync_data()
            .await
            .map_err(|e| spool_error(&path, e))?;
        let i = &self.driver.inner;
        let data_file = i.spool.data_file(&path);
        let open = || async {
            let file = tokio::fs::File::open(&data_file)
                .await
                .map_err(|e| spool_error(&path, e))?;
            Ok(ReaderStream::with_capacity(file, READ_CHUNK).boxed() as ByteStream)
        };
        let _guard = i.locks.write(&[&path]).await;
        // On failure the spool file stays, so the upload can be retried.
        i.import(&path, open).await?;
        i.spool
            .remove(&path)
            .await
            .map_err(|e| spool_error(&path, e))
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        let IpfsWriter {
            driver,
            path,
            file,
            pre,
            ..
        } = *self;
        drop(file);
        if let Some(p) = pre {
            p.abort();
        }
        let i = &driver.inner;
        let _guard = i.locks.write(&[&path]).await;
        i.spool
            .remove(&path)
            .await
            .map_err(|e| spool_error(&path, e))?;
        i.mfs_remove(&path).await.map(|_| ())
    }
}
