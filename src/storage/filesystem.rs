//! `filesystem` driver: files under a root directory, laid out exactly as
//! the storage paths say (so a CNCF Distribution `rootdirectory` is readable
//! as is).
//!
//! Whole-file writes go to a temporary file in the same directory and are
//! renamed into place, so a reader sees the old or the new content and a
//! crash never leaves a torn file at a real path. Temporary files carry the
//! prefix [`TEMP_PREFIX`] and are hidden from listings. Committed writers
//! are fsynced before `commit` returns.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::fs;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{
    ByteStream, FileInfo, FileWriter, Result, StorageDriver, StorageError, check_path, join,
};

/// Prefix of temporary files; never listed.
pub const TEMP_PREFIX: &str = ".disco-tmp-";

/// Read size for streamed files: large reads keep the number of
/// blocking-pool round trips per GiB low (each read is one).
const READ_CHUNK: usize = 1024 * 1024;

/// Files under a local directory.
#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    root: PathBuf,
}

impl FilesystemDriver {
    /// A driver rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        Ok(if path == "/" {
            self.root.clone()
        } else {
            self.root.join(&path[1..])
        })
    }
}

fn temp_name(dir: &Path) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()))
}

async fn create_parent(path: &str, full: &Path) -> Result<()> {
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent).await.map_err(|e| {
            if e.kind() == ErrorKind::NotADirectory || e.kind() == ErrorKind::AlreadyExists {
                StorageError::InvalidPath(format!("{path}: a parent is a file"))
            } else {
                StorageError::io(path, e)
            }
        })?;
    }
    Ok(())
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        let full = self.full(path)?;
        match fs::read(&full).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == ErrorKind::IsADirectory => {
                Err(StorageError::PathNotFound(path.to_string()))
            }
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        let full = self.full(path)?;
        create_parent(path, &full).await?;
        let dir = full.parent().unwrap_or(&self.root).to_path_buf();
        let tmp = temp_name(&dir);
        let res = async {
            fs::write(&tmp, &content).await?;
            fs::rename(&tmp, &full).await
        }
        .await;
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp).await;
            return Err(StorageError::io(path, e));
        }
        Ok(())
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let full = self.full(path)?;
        let mut file = fs::File::open(&full)
            .await
            .map_err(|e| StorageError::io(path, e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| StorageError::io(path, e))?;
        if meta.is_dir() {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        if offset > meta.len() {
            return Err(StorageError::InvalidOffset {
                path: path.to_string(),
                offset,
            });
        }
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| StorageError::io(path, e))?;
        }
        file.set_max_buf_size(READ_CHUNK);
        Ok(ReaderStream::with_capacity(file, READ_CHUNK).boxed())
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let full = self.full(path)?;
        create_parent(path, &full).await?;
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true);
        if !append {
            opts.truncate(true);
        }
        let mut file = opts
            .open(&full)
            .await
            .map_err(|e| StorageError::io(path, e))?;
        let size = if append {
            file.seek(std::io::SeekFrom::End(0))
                .await
                .map_err(|e| StorageError::io(path, e))?
        } else {
            0
        };
        Ok(Box::new(FsWriter {
            path: path.to_string(),
            full,
            file,
            size,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let full = self.full(path)?;
        let meta = fs::metadata(&full)
            .await
            .map_err(|e| StorageError::io(path, e))?;
        Ok(FileInfo {
            path: path.to_string(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            modified: meta.modified().ok(),
            is_dir: meta.is_dir(),
        })
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let full = self.full(path)?;
        let mut dir = fs::read_dir(&full).await.map_err(|e| match e.kind() {
            ErrorKind::NotADirectory => StorageError::PathNotFound(path.to_string()),
            _ => StorageError::io(path, e),
        })?;
        let mut out = Vec::new();
        while let Some(entry) = dir
            .next_entry()
            .await
            .map_err(|e| StorageError::io(path, e))?
        {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            out.push(join(path, &name));
        }
        Ok(out)
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        let from = self.full(source)?;
        let to = self.full(dest)?;
        if fs::symlink_metadata(&from).await.is_err() {
            return Err(StorageError::PathNotFound(source.to_string()));
        }
        create_parent(dest, &to).await?;
        match fs::rename(&from, &to).await {
            Ok(()) => Ok(()),
            // Replacing a non-empty directory: move the old one aside first.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::DirectoryNotEmpty | ErrorKind::IsADirectory
                ) =>
            {
                let dir = to.parent().unwrap_or(&self.root).to_path_buf();
                let aside = temp_name(&dir);
                fs::rename(&to, &aside)
                    .await
                    .map_err(|e| StorageError::io(dest, e))?;
                fs::rename(&from, &to)
                    .await
                    .map_err(|e| StorageError::io(dest, e))?;
                remove_any(&aside)
                    .await
                    .map_err(|e| StorageError::io(dest, e))
            }
            Err(e) => Err(StorageError::io(source, e)),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        if path == "/" {
            return Err(StorageError::InvalidPath(
                "refusing to delete the root".into(),
            ));
        }
        let full = self.full(path)?;
        remove_any(&full)
            .await
            .map_err(|e| StorageError::io(path, e))
    }
}

async fn remove_any(full: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(full).await?;
    if meta.is_dir() {
        fs::remove_dir_all(full).await
    } else {
        fs::remove_file(full).await
    }
}

/// Appends straight to the target file; `commit` fsyncs.
struct FsWriter {
    path: String,
    full: PathBuf,
    file: fs::File,
    size: u64,
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.file
            .write_all(&data)
            .await
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.file
            .flush()
            .await
            .map_err(|e| StorageError::io(&self.path, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.file
            .flush()
            .await
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| StorageError::io(&self.path, e))
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        drop(self.file);
        match fs::remove_file(&self.full).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&self.path, e)),
        }
    }
}

/// Removes temporary files older than `age` left by a crash (best effort).
pub async fn purge_temp_files(root: &Path, age: Duration) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(mut rd) = fs::read_dir(&dir).await else {
            continue;
        };
        while let Ok(Some(entry)) = rd.next_entry().await {
            let Ok(ft) = entry.file_type().await else {
                continue;
            };
            if ft.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let old = entry
                    .metadata()
                    .await
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|e| e >= age);
                if old {
                    let _ = fs::remove_file(entry.path()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testsuite::Fixture;

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let driver = FilesystemDriver::new(dir.path()).unwrap();
        Fixture::new(driver, dir)
    }

    crate::storage_driver_suite!(fixture());
}
