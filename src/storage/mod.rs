//! Path-based storage drivers, in the spirit of CNCF Distribution's
//! `storagedriver.StorageDriver`.
//!
//! Paths are absolute, `/`-separated and validated by [`check_path`]: every
//! component matches `[A-Za-z0-9._-]+` (plus unicode letters), never `.` or
//! `..`. The registry layer above never builds a path from unchecked input.
//!
//! Every driver passes the shared suite in [`testsuite`].

pub mod cache;
pub mod filesystem;
pub mod inmemory;
pub mod ipfs;
pub mod s3;
pub mod testsuite;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// A stream of bytes read from or written to storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// Shared handle to a driver.
pub type Driver = Arc<dyn StorageDriver>;

/// Errors every driver reports with the same meaning.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing exists at this path.
    #[error("path not found: {0}")]
    PathNotFound(String),
    /// The path is syntactically invalid for storage.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A read or append started beyond the end of a file.
    #[error("invalid offset {offset} for {path}")]
    InvalidOffset { path: String, offset: u64 },
    /// The backend is down or refused the connection (maps to HTTP 503).
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time (maps to HTTP 503).
    #[error("storage backend timed out: {0}")]
    Timeout(String),
    /// The operation is not supported by this driver.
    #[error("unsupported operation: {0}")]
    Unsupported(&'static str),
    /// Local I/O failure.
    #[error("storage I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Anything else, with the driver's explanation.
    #[error("storage error: {0}")]
    Other(String),
}

impl StorageError {
    /// Wraps an I/O error, turning `NotFound` into [`StorageError::PathNotFound`].
    pub fn io(path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::PathNotFound(path.to_string())
        } else {
            StorageError::Io {
                path: path.to_string(),
                source,
            }
        }
    }

    /// True for [`StorageError::PathNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::PathNotFound(_))
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What [`StorageDriver::stat`] knows about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path that was asked about.
    pub path: String,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification, where the backend keeps one.
    pub modified: Option<SystemTime>,
    /// True for directories.
    pub is_dir: bool,
}

/// What a [`StorageDriver::walk`] callback tells the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkControl {
    /// Keep going (descend into this entry if it is a directory).
    Continue,
    /// Do not descend into this directory.
    SkipDir,
    /// Stop the whole walk.
    Stop,
}

/// The callback of [`StorageDriver::walk`].
pub type WalkFn<'a> = dyn FnMut(&FileInfo) -> WalkControl + Send + 'a;

/// A writer returned by [`StorageDriver::writer`]. Bytes written become
/// visible at the path once [`FileWriter::commit`] or [`FileWriter::close`]
/// returns; a writer dropped without either loses what it wrote since it was
/// opened (drivers may keep it for a later append, but never expose a torn
/// prefix as a committed file).
#[async_trait]
pub trait FileWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Total size of the file so far, including what existed before an append.
    fn size(&self) -> u64;
    /// Persists what was written so far so a later `writer(path, true)` can
    /// append to it.
    async fn close(self: Box<Self>) -> Result<()>;
    /// Persists and finalises the file.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards everything this writer wrote, including any earlier content.
    async fn cancel(self: Box<Self>) -> Result<()>;
}

/// A path-based storage backend.
#[async_trait]
pub trait StorageDriver: Send + Sync + 'static {
    /// Short name for logs and metrics (`filesystem`, `inmemory`, `ipfs`, ...).
    fn name(&self) -> &'static str;

    /// Reads a whole (small) file.
    async fn get_content(&self, path: &str) -> Result<Bytes>;

    /// Writes a whole file atomically: readers see the old or the new
    /// content, never a mix. Parent directories are created.
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()>;

    /// Streams a file from `offset`. `offset == size` gives an empty stream;
    /// `offset > size` is [`StorageError::InvalidOffset`].
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream>;

    /// Opens a writer; with `append`, continues a file previously closed.
    /// Appending to a missing file starts an empty one.
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>>;

    /// Size and kind of a file or directory.
    async fn stat(&self, path: &str) -> Result<FileInfo>;

    /// Full paths of the direct children of a directory (any order).
    async fn list(&self, path: &str) -> Result<Vec<String>>;

    /// Moves a file or directory, replacing whatever is at `dest`.
    /// Parent directories of `dest` are created.
    async fn rename(&self, source: &str, dest: &str) -> Result<()>;

    /// Deletes a file or a directory and everything under it.
    async fn delete(&self, path: &str) -> Result<()>;

    /// A URL clients may fetch the file from directly, if the backend has one.
    async fn redirect_url(&self, _path: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Walks the tree under `path` depth-first in lexical order, calling `f`
    /// for every entry (not `path` itself). Missing `path` is `PathNotFound`.
    async fn walk(&self, path: &str, f: &mut WalkFn<'_>) -> Result<()> {
        walk_by_listing(self, path, f).await
    }
}

/// Default [`StorageDriver::walk`] built on `list` and `stat`.
pub async fn walk_by_listing<D, F>(driver: &D, path: &str, f: &mut F) -> Result<()>
where
    D: StorageDriver + ?Sized,
    F: FnMut(&FileInfo) -> WalkControl + Send + ?Sized,
{
    // Explicit stack instead of recursion: async recursion needs boxing and
    // deep trees would grow the future without bound.
    let mut stack: Vec<Vec<String>> = Vec::new();
    let mut children = driver.list(path).await?;
    children.sort_unstable_by(|a, b| b.cmp(a));
    stack.push(children);
    while let Some(top) = stack.last_mut() {
        let Some(child) = top.pop() else {
            stack.pop();
            continue;
        };
        let info = match driver.stat(&child).await {
            Ok(info) => info,
            // Deleted while walking: skip it.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match f(&info) {
            WalkControl::Stop => return Ok(()),
            WalkControl::SkipDir => continue,
            WalkControl::Continue => {}
        }
        if info.is_dir {
            let mut grand = match driver.list(&child).await {
                Ok(list) => list,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            grand.sort_unstable_by(|a, b| b.cmp(a));
            stack.push(grand);
        }
    }
    Ok(())
}

/// Validates a storage path: absolute, no empty, `.` or `..` components, no
/// NUL or backslash, and nothing but `[A-Za-z0-9._-]`, `@`, `+`, `=`, `:`
/// and non-ASCII letters in names. `/` itself is valid.
pub fn check_path(path: &str) -> Result<()> {
    let bad = || StorageError::InvalidPath(path.to_string());
    if path == "/" {
        return Ok(());
    }
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty() || rest.ends_with('/') {
        return Err(bad());
    }
    for comp in rest.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(bad());
        }
        let ok = comp.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_' | '-' | '@' | '+' | '=' | ':')
                || (!c.is_ascii() && c.is_alphanumeric())
        });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// The parent of a checked path (`/a/b` → `/a`, `/a` → `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Joins a checked directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "/",
            "/a",
            "/a/b.c",
            "/docker/registry/v2/blobs/sha256/ab/x/data",
            "/ünï/cødé",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/a/../b", "/.", "/a\\b", "/a\0", "/a b", "/%2e%2e",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
