//! The local spool: bytes of files being written (uploads) before they are
//! imported into IPFS on commit.
//!
//! Each spooled storage path has two files in one flat directory, named by
//! a hash of (scope, path): `<stem>.data` (the bytes) and `<stem>.path`
//! (JSON naming the scope and path, written atomically). An index of the
//! spooled paths is kept in memory and rebuilt from the `.path` files on
//! start, so a closed upload survives a restart and can be resumed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::fs;

/// What a `.path` file records.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    scope: String,
    path: String,
}

/// Spooled files of one driver (one scope) in one directory.
pub struct Spool {
    dir: PathBuf,
    scope: String,
    index: parking_lot::Mutex<BTreeMap<String, ()>>,
}

impl Spool {
    /// Opens (creating) the spool directory and loads the entries of
    /// `scope`.
    pub async fn open(dir: &Path, scope: &str) -> io::Result<Self> {
        fs::create_dir_all(dir).await?;
        let mut index = BTreeMap::new();
        let mut rd = fs::read_dir(dir).await?;
        while let Some(entry) = rd.next_entry().await? {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".path")) else {
                continue;
            };
            let Ok(raw) = fs::read(entry.path()).await else {
                continue;
            };
            let Ok(side) = serde_json::from_slice::<Sidecar>(&raw) else {
                tracing::warn!(file = %entry.path().display(), "unreadable spool entry ignored");
                continue;
            };
            if side.scope != scope {
                continue;
            }
            if fs::metadata(dir.join(format!("{stem}.data"))).await.is_ok() {
                index.insert(side.path, ());
            } else {
                let _ = fs::remove_file(entry.path()).await;
            }
        }
        if !index.is_empty() {
            tracing::info!(dir = %dir.display(), entries = index.len(), "spooled uploads found");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            scope: scope.to_string(),
            index: parking_lot::Mutex::new(index),
        })
    }

    fn stem(&self, path: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.scope.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        hex::encode(&h.finalize()[..20])
    }

    /// The data file of a spooled path.
    pub fn data_file(&self, path: &str) -> PathBuf {
        self.dir.join(format!("{}.data", self.stem(path)))
    }

    fn sidecar(&self, path: &str) -> PathBuf {
        self.dir.join(format!("{}.path", self.stem(path)))
    }

    /// Whether `path` is a spooled file. The index is a cache of the
    /// directory: a path another process spooled (replicas sharing the
    /// spool directory) is found by its `.path` file and indexed.
    pub fn contains(&self, path: &str) -> bool {
        if self.index.lock().contains_key(path) {
            return true;
        }
        let on_disk = std::fs::metadata(self.sidecar(path)).is_ok()
            && std::fs::metadata(self.data_file(path)).is_ok();
        if on_disk {
            self.index.lock().insert(path.to_string(), ());
        }
        on_disk
    }

    /// Spooled paths equal to `path` or below it.
    pub fn paths_at_or_under(&self, path: &str) -> Vec<String> {
        let prefix = dir_prefix(path);
        let idx = self.index.lock();
        let mut out: Vec<String> = idx
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if path != "/" && idx.contains_key(path) {
            out.push(path.to_string());
        }
        out
    }

    /// Direct children of directory `dir` that hold spooled files:
    /// `(name, is_dir)`.
    pub fn children(&self, dir: &str) -> Vec<(String, bool)> {
        let prefix = dir_prefix(dir);
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for p in self.paths_at_or_under(dir) {
            let Some(rest) = p.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                Some((name, _)) => {
                    out.insert(name.to_string(), true);
                }
                None => {
                    out.entry(rest.to_string()).or_insert(false);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Size of a spooled file, if `path` is one.
    pub async fn size(&self, path: &str) -> io::Result<Option<u64>> {
        if !self.contains(path) {
            return Ok(None);
        }
        match fs::metadata(self.data_file(path)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_sidecar(&self, path: &str) -> io::Result<()> {
        let side = serde_json::to_vec(&Sidecar {
            scope: self.scope.clone(),
            path: path.to_string(),
        })
        .map_err(io::Error::other)?;
        let target = self.sidecar(path);
        let tmp = target.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        fs::write(&tmp, side).await?;
        if let Err(e) = fs::rename(&tmp, &target).await {
            let _ = fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(())
    }

    /// Opens `path` for appending, creating it empty (or truncating it with
    /// `truncate`); returns the file and its current size.
    pub async fn open_append(&self, path: &str, truncate: bool) -> io::Result<(fs::File, u64)> {
        self.write_sidecar(path).await?;
        let mut opts = fs::OpenOptions::new();
        if truncate {
            opts.create(true).write(true).truncate(true);
        } else {
            opts.create(true).append(true);
        }
        let file = match opts.open(self.data_file(path)).await {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(self.sidecar(path)).await;
                return Err(e);
            }
        };
        let size = file.metadata().await?.len();
        self.index.lock().insert(path.to_string(), ());
        Ok((file, size))
    }

    /// Forgets `path` and deletes its files. Missing is fine.
    pub async fn remove(&self, path: &str) -> io::Result<()> {
        self.index.lock().remove(path);
        for f in [self.sidecar(path), self.data_file(path)] {
            match fs::remove_file(&f).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves a spooled file to another path (replacing a spooled file
    /// there).
    pub async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        self.write_sidecar(to).await?;
        fs::rename(self.data_file(from), self.data_file(to)).await?;
        {
            let mut idx = self.index.lock();
            idx.remove(from);
            idx.insert(to.to_string(), ());
        }
        match fs::remove_file(self.sidecar(from)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `dir` with a trailing slash (`/` stays `/`).
fn dir_prefix(dir: &str) -> String {
    if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn entries_survive_reopen_and_are_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), "/root").await.unwrap();
        let (mut f, size) = s.open_append("/a/_uploads/u/data", false).await.unwrap();
        assert_eq!(size, 0);
        f.write_all(b"12345").await.unwrap();
        f.flush().await.unwrap();
        s.open_append("/a/other", false).await.unwrap();
        assert_eq!(s.size("/a/_uploads/u/data").await.unwrap(), Some(5));
        assert_eq!(
            s.children("/a"),
            vec![("_uploads".to_string(), true), ("other".to_string(), false)]
        );
        assert_eq!(s.children("/"), vec![("a".to_string(), true)]);
        assert_eq!(s.paths_at_or_under("/a/_uploads").len(), 1);
        assert!(s.paths_at_or_under("/a/_up").is_empty());

        let again = Spool::open(dir.path(), "/root").await.unwrap();
        assert!(again.contains("/a/_uploads/u/data"));
        assert_eq!(again.size("/a/_uploads/u/data").await.unwrap(), Some(5));
        let (_, size) = again
            .open_append("/a/_uploads/u/data", false)
            .await
            .unwrap();
        assert_eq!(size, 5);
        let other_scope = Spool::open(dir.path(), "/elsewhere").await.unwrap();
        assert!(!other_scope.contains("/a/_uploads/u/data"));

        again.rename("/a/_uploads/u/data", "/b/data").await.unwrap();
        assert!(!again.contains("/a/_uploads/u/data"));
        assert_eq!(again.size("/b/data").await.unwrap(), Some(5));
        again.remove("/b/data").await.unwrap();
        assert!(!again.contains("/b/data"));
        let third = Spool::open(dir.path(), "/root").await.unwrap();
        assert!(!third.contains("/b/data"));
        assert!(third.contains("/a/other"));
    }
}
