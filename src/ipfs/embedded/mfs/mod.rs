//! MFS: a mutable UnixFS directory tree over the blockstore, whose root CID
//! is persisted in `mfs-root` and survives restarts.
//!
//! Directories live in memory once touched ([`dir::Dir`]); changes mark
//! the path to the root dirty and are written as blocks only on flush (a
//! timer, `files_flush`, GC and shutdown), as Kubo's MFS does. A write or
//! stat of a small file costs O(path depth); a flush costs O(changed
//! directories). The persisted root is the durability point: blocks are
//! synced before the new root is written (atomically), so after a crash the
//! tree is the last flushed one and every block it refers to is on disk.
//!
//! This layer is synchronous (blocking file I/O); the async node calls it
//! from blocking threads.

pub(crate) mod dir;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use cid::Cid;
use parking_lot::Mutex;

use self::dir::{Dir, Entry, Link, Node, flush_dir};
use super::blockstore::FlatFs;
use crate::ipfs::{EntryKind, IpfsError, MfsEntry, MfsStat, Result};

/// Splits an MFS path into components. Paths are absolute; empty
/// components (`//`, trailing `/`) are ignored; `.` and `..` are refused.
pub(crate) fn split_path(path: &str) -> Result<Vec<&str>> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| IpfsError::Invalid(format!("path must be absolute: {path:?}")))?;
    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    if comps
        .iter()
        .any(|c| *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(IpfsError::Invalid(format!("bad path {path:?}")));
    }
    Ok(comps)
}

/// The MFS tree.
pub(crate) struct Mfs {
    root: Arc<Dir>,
    store: Arc<FlatFs>,
    root_file: PathBuf,
    /// Serialises flushes; holds the last persisted root.
    persisted: Mutex<Option<Cid>>,
}

impl Mfs {
    /// Opens the tree persisted under `dir` (empty if none).
    pub fn open(store: Arc<FlatFs>, dir: &Path) -> Result<Self> {
        let root_file = dir.join("mfs-root");
        let (root, persisted) = match fs::read_to_string(&root_file) {
            Ok(text) => {
                let cid: Cid = text.trim().parse().map_err(|e| {
                    IpfsError::Other(format!("bad MFS root in {}: {e}", root_file.display()))
                })?;
                let tsize = store.size_sync(&cid)?.unwrap_or(0);
                let root = Dir::load(&store, cid, tsize, Weak::new())
                    .map_err(|e| IpfsError::Other(format!("cannot load MFS root {cid}: {e}")))?;
                (root, Some(cid))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Dir::new_empty(Weak::new()), None)
            }
            Err(e) => {
                return Err(IpfsError::Other(format!(
                    "reading {}: {e}",
                    root_file.display()
                )));
            }
        };
        Ok(Mfs {
            root,
            store,
            root_file,
            persisted: Mutex::new(persisted),
        })
    }

    /// The blockstore.
    pub fn store(&self) -> &Arc<FlatFs> {
        &self.store
    }

    /// The directory at `comps`, created (with parents) if `create`.
    fn walk(&self, comps: &[&str], create: bool) -> Result<Arc<Dir>> {
        let mut dir = self.root.clone();
        for (i, c) in comps.iter().enumerate() {
            loop {
                match dir.lookup(c, &self.store)? {
                    Some(Node::Dir(d)) => {
                        dir = d;
                        break;
                    }
                    Some(Node::File { .. }) => {
                        return Err(IpfsError::NotADirectory(format!(
                            "/{}",
                            comps[..=i].join("/")
                        )));
                    }
                    None if create => {
                        let new = Dir::new_empty(Arc::downgrade(&dir));
                        match dir.insert(c, Entry::Dir(new.clone()), false, &self.store) {
                            Ok(()) => {
                                dir = new;
                                break;
                            }
                            // Created concurrently: look again.
                            Err(IpfsError::AlreadyExists(_)) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    None => return Err(IpfsError::NotFound(format!("/{}", comps[..=i].join("/")))),
                }
            }
        }
        Ok(dir)
    }

    /// What `path` names.
    pub fn resolve(&self, path: &str) -> Result<Node> {
        let comps = split_path(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Ok(Node::Dir(self.root.clone()));
        };
        let dir = self.walk(parents, false)?;
        dir.lookup(last, &self.store)?
            .ok_or_else(|| IpfsError::NotFound(path.to_string()))
    }

    /// The parent directory of `path` and the last component.
    pub fn parent_of(&self, path: &str, create: bool) -> Result<(Arc<Dir>, String)> {
        let comps = split_path(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(IpfsError::Invalid("the root has no parent".into()));
        };
        Ok((self.walk(parents, create)?, last.to_string()))
    }

    /// `mkdir [-p]`.
    pub fn mkdir(&self, path: &str, parents: bool) -> Result<()> {
        let comps = split_path(path)?;
        let Some((last, up)) = comps.split_last() else {
            return if parents {
                Ok(())
            } else {
                Err(IpfsError::AlreadyExists("/".into()))
            };
        };
        if parents {
            self.walk(&comps, true).map(|_| ())
        } else {
            let dir = self.walk(up, false)?;
            let new = Dir::new_empty(Arc::downgrade(&dir));
            dir.insert(last, Entry::Dir(new), false, &self.store)
        }
    }

    /// `stat`. Directories are flushed (their changed part) to get a CID.
    pub fn stat(&self, path: &str) -> Result<MfsStat> {
        Ok(match self.resolve(path)? {
            Node::File { cid, size, tsize } => MfsStat {
                cid,
                size,
                cumulative_size: tsize,
                kind: EntryKind::File,
            },
            Node::Dir(d) => {
                let _guard = self.persisted.lock();
                let (cid, tsize) = flush_dir(&d, &self.store)?;
                MfsStat {
                    cid,
                    size: 0,
                    cumulative_size: tsize,
                    kind: EntryKind::Directory,
                }
            }
        })
    }

    /// `ls`: a directory's entries, or the file itself.
    pub fn ls(&self, path: &str) -> Result<Vec<MfsEntry>> {
        match self.resolve(path)? {
            Node::File { cid, size, .. } => Ok(vec![MfsEntry {
                name: split_path(path)?
                    .last()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                kind: EntryKind::File,
                size,
                cid,
            }]),
            Node::Dir(d) => {
                let _guard = self.persisted.lock();
                Ok(d.list(&self.store)?
                    .into_iter()
                    .map(|(name, kind, size, cid)| MfsEntry {
                        name,
                        kind,
                        size,
                        cid,
                    })
                    .collect())
            }
        }
    }

    /// Links a stored DAG at `path` (replacing a file there if `overwrite`).
    pub fn link(&self, path: &str, link: Link, parents: bool, overwrite: bool) -> Result<()> {
        let (dir, name) = self.parent_of(path, parents)?;
        if overwrite && let Some(Node::Dir(_)) = dir.lookup(&name, &self.store)? {
            return Err(IpfsError::NotAFile(path.to_string()));
        }
        dir.insert(&name, Entry::Link(link), overwrite, &self.store)
    }

    /// The stored link for `node` (flushing a directory).
    fn link_of(&self, node: &Node) -> Result<Link> {
        Ok(match node {
            Node::File { cid, size, tsize } => Link {
                cid: *cid,
                tsize: *tsize,
                info: Some((EntryKind::File, *size)),
            },
            Node::Dir(d) => {
                let _guard = self.persisted.lock();
                let (cid, tsize) = flush_dir(d, &self.store)?;
                Link {
                    cid,
                    tsize,
                    info: Some((EntryKind::Directory, 0)),
                }
            }
        })
    }

    /// `cp` within MFS.
    pub fn cp(&self, from: &str, to: &str, parents: bool) -> Result<()> {
        let node = self.resolve(from)?;
        let link = self.link_of(&node)?;
        self.link(to, link, parents, false)
    }

    /// `mv`: into `to` if it is an existing directory, else to `to`.
    pub fn mv(&self, from: &str, to: &str) -> Result<()> {
        let src = split_path(from)?;
        let mut dst = split_path(to)?;
        if src.is_empty() {
            return Err(IpfsError::Invalid("cannot move the root".into()));
        }
        if src == dst {
            return Ok(());
        }
        if let Ok(Node::Dir(_)) = self.resolve(to) {
            dst.push(src[src.len() - 1]);
        }
        if dst.len() > src.len() && dst[..src.len()] == src[..] {
            return Err(IpfsError::Invalid(format!(
                "cannot move {from} into itself"
            )));
        }
        let (dst_last, dst_up) = dst
            .split_last()
            .ok_or_else(|| IpfsError::Invalid("cannot replace the root".into()))?;
        let dst_dir = self.walk(dst_up, false)?;
        if dst_dir.lookup(dst_last, &self.store)?.is_some() {
            return Err(IpfsError::AlreadyExists(format!("/{}", dst.join("/"))));
        }
        let (src_last, src_up) = src
            .split_last()
            .ok_or_else(|| IpfsError::Invalid("cannot move the root".into()))?;
        let src_dir = self.walk(src_up, false)?;
        // Make sure a linked directory is loaded so it moves as one object.
        src_dir
            .lookup(src_last, &self.store)?
            .ok_or_else(|| IpfsError::NotFound(from.to_string()))?;
        let entry = src_dir
            .remove(src_last, &self.store)?
            .ok_or_else(|| IpfsError::NotFound(from.to_string()))?;
        if let Err(e) = dst_dir.insert(dst_last, entry.clone(), false, &self.store) {
            // Put it back where it was.
            let _ = src_dir.insert(src_last, entry, true, &self.store);
            return Err(e);
        }
        Ok(())
    }

    /// `rm [-r]`.
    pub fn rm(&self, path: &str, recursive: bool) -> Result<()> {
        let (dir, name) = self.parent_of(path, false)?;
        match dir.lookup(&name, &self.store)? {
            None => Err(IpfsError::NotFound(path.to_string())),
            Some(Node::Dir(_)) if !recursive => Err(IpfsError::Invalid(format!(
                "{path} is a directory, use recursive removal"
            ))),
            Some(_) => {
                dir.remove(&name, &self.store)?;
                Ok(())
            }
        }
    }

    /// Writes every change and persists the root (the durability point):
    /// blocks are synced first, then `mfs-root` is replaced atomically.
    pub fn flush(&self) -> Result<Cid> {
        let mut persisted = self.persisted.lock();
        let (cid, _) = flush_dir(&self.root, &self.store)?;
        if *persisted != Some(cid) {
            self.store.sync()?;
            write_atomic(&self.root_file, format!("{cid}\n").as_bytes())?;
            *persisted = Some(cid);
        }
        Ok(cid)
    }

    /// Flushes and returns the CID at `path`.
    pub fn flush_path(&self, path: &str) -> Result<Cid> {
        self.flush()?;
        Ok(self.stat(path)?.cid)
    }

    /// The last persisted root.
    pub fn persisted_root(&self) -> Option<Cid> {
        *self.persisted.lock()
    }
}

/// Replaces `path` with `data` atomically and durably.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| IpfsError::Other(format!("writing {}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}
