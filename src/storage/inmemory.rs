//! `inmemory` driver: files in a sorted map, for tests and throwaway
//! registries. Directories are implied by the files below them.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream;
use parking_lot::RwLock;

use super::{
    ByteStream, FileInfo, FileWriter, Result, StorageDriver, StorageError, check_path, join,
};

/// Chunk size of streamed reads.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Clone)]
struct File {
    data: Bytes,
    modified: SystemTime,
}

type Tree = Arc<RwLock<BTreeMap<String, File>>>;

/// Files held in memory.
#[derive(Clone, Default)]
pub struct InMemoryDriver {
    files: Tree,
}

impl InMemoryDriver {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The key range of everything strictly under directory `path`.
fn prefix_of(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

fn under<'a>(
    map: &'a BTreeMap<String, File>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a File)> + 'a {
    map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

fn is_dir(map: &BTreeMap<String, File>, path: &str) -> bool {
    let prefix = prefix_of(path);
    under(map, &prefix).next().is_some()
}

/// Fails if a proper prefix of `path` is a file (a file cannot have children).
fn check_parents(map: &BTreeMap<String, File>, path: &str) -> Result<()> {
    let mut i = 0;
    while let Some(pos) = path[i + 1..].find('/') {
        let end = i + 1 + pos;
        if map.contains_key(&path[..end]) {
            return Err(StorageError::InvalidPath(format!(
                "{path}: a parent is a file"
            )));
        }
        i = end;
    }
    Ok(())
}

#[async_trait]
impl StorageDriver for InMemoryDriver {
    fn name(&self) -> &'static str {
        "inmemory"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        self.files
            .read()
            .get(path)
            .map(|f| f.data.clone())
            .ok_or_else(|| StorageError::PathNotFound(path.to_string()))
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        check_path(path)?;
        let mut map = self.files.write();
        check_parents(&map, path)?;
        if is_dir(&map, path) {
            return Err(StorageError::InvalidPath(format!("{path} is a directory")));
        }
        map.insert(
            path.to_string(),
            File {
                data: content,
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let data = self.get_content(path).await?;
        if offset > data.len() as u64 {
            return Err(StorageError::InvalidOffset {
                path: path.to_string(),
                offset,
            });
        }
        let rest = data.slice(offset as usize..);
        let chunks: Vec<std::io::Result<Bytes>> = (0..rest.len())
            .step_by(READ_CHUNK)
            .map(|i| Ok(rest.slice(i..(i + READ_CHUNK).min(rest.len()))))
            .collect();
        Ok(Box::pin(stream::iter(chunks)))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        check_path(path)?;
        let mut buf = BytesMut::new();
        {
            let map = self.files.read();
            check_parents(&map, path)?;
            if is_dir(&map, path) {
                return Err(StorageError::InvalidPath(format!("{path} is a directory")));
            }
            if append && let Some(f) = map.get(path) {
                buf.extend_from_slice(&f.data);
            }
        }
        Ok(Box::new(MemWriter {
            files: self.files.clone(),
            path: path.to_string(),
            buf,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        check_path(path)?;
        let map = self.files.read();
        if let Some(f) = map.get(path) {
            return Ok(FileInfo {
                path: path.to_string(),
                size: f.data.len() as u64,
                modified: Some(f.modified),
                is_dir: false,
            });
        }
        if path == "/" || is_dir(&map, path) {
            return Ok(FileInfo {
                path: path.to_string(),
                size: 0,
                modified: None,
                is_dir: true,
            });
        }
        Err(StorageError::PathNotFound(path.to_string()))
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_path(path)?;
        let map = self.files.read();
        let prefix = prefix_of(path);
        let mut out: Vec<String> = Vec::new();
        for (key, _) in under(&map, &prefix) {
            let rest = &key[prefix.len()..];
            let name = rest.split('/').next().unwrap_or(rest);
            let child = join(path, name);
            if out.last() != Some(&child) {
                out.push(child);
            }
        }
        if out.is_empty() && path != "/" {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        Ok(out)
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        check_path(source)?;
        check_path(dest)?;
        let mut map = self.files.write();
        check_parents(&map, dest)?;
        if let Some(f) = map.remove(source) {
            remove_tree(&mut map, dest);
            map.insert(dest.to_string(), f);
            return Ok(());
        }
        let src_prefix = prefix_of(source);
        let moved: Vec<(String, File)> = under(&map, &src_prefix)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if moved.is_empty() {
            return Err(StorageError::PathNotFound(source.to_string()));
        }
        remove_tree(&mut map, dest);
        let dst_prefix = prefix_of(dest);
        for (k, v) in moved {
            map.remove(&k);
            map.insert(format!("{dst_prefix}{}", &k[src_prefix.len()..]), v);
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
        let mut map = self.files.write();
        if remove_tree(&mut map, path) == 0 {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        Ok(())
    }
}

/// Removes the file at `path` or everything under it; returns how many files.
fn remove_tree(map: &mut BTreeMap<String, File>, path: &str) -> usize {
    let mut n = usize::from(map.remove(path).is_some());
    let prefix = prefix_of(path);
    let keys: Vec<String> = under(map, &prefix).map(|(k, _)| k.clone()).collect();
    n += keys.len();
    for k in keys {
        map.remove(&k);
    }
    n
}

struct MemWriter {
    files: Tree,
    path: String,
    buf: BytesMut,
}

impl MemWriter {
    fn store(self) -> Result<()> {
        let mut map = self.files.write();
        check_parents(&map, &self.path)?;
        map.insert(
            self.path,
            File {
                data: self.buf.freeze(),
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }
}

#[async_trait]
impl FileWriter for MemWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    async fn close(self: Box<Self>) -> Result<()> {
        (*self).store()
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        (*self).store()
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        self.files.write().remove(&self.path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testsuite::Fixture;

    async fn fixture() -> Fixture {
        Fixture::new(InMemoryDriver::new(), ())
    }

    crate::storage_driver_suite!(fixture());
}
