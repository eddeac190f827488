//! One MFS directory in memory: its entries (flat map or lazily loaded
//! HAMT), a dirty flag, and the CID of its last encoding.
//!
//! Locking: each directory has its own mutex, held only for the duration of
//! one lookup or change. Code that holds a directory's lock may lock its
//! children (parent before child), never the reverse; writers lock one
//! directory at a time. Dirty flags are atomics set from a changed
//! directory up to the root, so a flush finds every change without walking
//! clean subtrees.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use cid::Cid;
use parking_lot::Mutex;

use crate::ipfs::embedded::blockstore::FlatFs;
use crate::ipfs::unixfs::dir::{
    CID_V1_LEN, DecodedDir, NodeKind, SHARD_THRESHOLD, cid_len, decode_dir, encode_flat,
    link_estimate, node_kind,
};
use crate::ipfs::unixfs::export::decode_file_node;
use crate::ipfs::unixfs::hamt::{HamtValue, Shard};
use crate::ipfs::unixfs::{BlockGet, BlockSink};
use crate::ipfs::{EntryKind, IpfsError, RAW, Result};

/// A link to a stored DAG, with its kind and file size once known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub cid: Cid,
    pub tsize: u64,
    pub info: Option<(EntryKind, u64)>,
}

/// A directory entry.
#[derive(Clone)]
pub(crate) enum Entry {
    /// A stored DAG (file, or a directory not loaded yet).
    Link(Link),
    /// A directory loaded in memory.
    Dir(Arc<Dir>),
}

impl HamtValue for Entry {
    fn from_link(cid: Cid, tsize: u64) -> Self {
        Entry::Link(Link {
            cid,
            tsize,
            info: None,
        })
    }
}

impl Entry {
    fn estimate(&self, name: &str) -> u64 {
        match self {
            Entry::Link(l) => link_estimate(name, cid_len(&l.cid)),
            Entry::Dir(_) => link_estimate(name, CID_V1_LEN),
        }
    }
}

/// What a path resolves to.
#[derive(Clone)]
pub(crate) enum Node {
    File { cid: Cid, size: u64, tsize: u64 },
    Dir(Arc<Dir>),
}

enum Body {
    Flat {
        entries: BTreeMap<String, Entry>,
        estimate: u64,
    },
    Hamt {
        root: Shard<Entry>,
        /// Exact estimate once computed (needed only to switch back).
        estimate: Option<u64>,
    },
}

struct State {
    cached: Option<(Cid, u64)>,
    body: Body,
}

/// An MFS directory.
pub(crate) struct Dir {
    st: Mutex<State>,
    dirty: AtomicBool,
    parent: Mutex<Weak<Dir>>,
}

fn load_link_info(store: &FlatFs, link: &mut Link) -> Result<(EntryKind, u64)> {
    if let Some(i) = link.info {
        return Ok(i);
    }
    let info = if link.cid.codec() == RAW {
        let size = store
            .size_sync(&link.cid)?
            .ok_or_else(|| IpfsError::NotFound(format!("block {}", link.cid)))?;
        (EntryKind::File, size)
    } else {
        let block = store.get_block(&link.cid)?;
        match node_kind(&link.cid, &block)? {
            NodeKind::Directory | NodeKind::HamtShard => (EntryKind::Directory, 0),
            NodeKind::File => (EntryKind::File, decode_file_node(&link.cid, &block)?.2),
            NodeKind::Other => (EntryKind::File, 0),
        }
    };
    link.info = Some(info);
    Ok(info)
}

/// Turns an entry into a [`Node`], loading a linked directory into memory
/// (the entry is replaced by the loaded directory; its encoding is
/// unchanged).
fn node_of(entry: &mut Entry, store: &FlatFs, parent: &Arc<Dir>) -> Result<Node> {
    match entry {
        Entry::Dir(d) => Ok(Node::Dir(d.clone())),
        Entry::Link(link) => {
            let (kind, size) = load_link_info(store, link)?;
            match kind {
                EntryKind::File => Ok(Node::File {
                    cid: link.cid,
                    size,
                    tsize: link.tsize,
                }),
                EntryKind::Directory => {
                    let dir = Dir::load(store, link.cid, link.tsize, Arc::downgrade(parent))?;
                    *entry = Entry::Dir(dir.clone());
                    Ok(Node::Dir(dir))
                }
            }
        }
    }
}

impl Dir {
    /// A new empty directory (dirty until flushed).
    pub fn new_empty(parent: Weak<Dir>) -> Arc<Dir> {
        Arc::new(Dir {
            st: Mutex::new(State {
                cached: None,
                body: Body::Flat {
                    entries: BTreeMap::new(),
                    estimate: 0,
                },
            }),
            dirty: AtomicBool::new(true),
            parent: Mutex::new(parent),
        })
    }

    /// Loads a stored directory (flat or HAMT root).
    pub fn load(store: &FlatFs, cid: Cid, tsize: u64, parent: Weak<Dir>) -> Result<Arc<Dir>> {
        let block = store.get_block(&cid)?;
        let body = match decode_dir(&cid, &block)? {
            DecodedDir::Flat(links) => {
                let mut entries = BTreeMap::new();
                let mut estimate = 0;
                for l in links {
                    estimate += link_estimate(&l.name, cid_len(&l.cid));
                    entries.insert(l.name, Entry::from_link(l.cid, l.tsize));
                }
                Body::Flat { entries, estimate }
            }
            DecodedDir::Hamt(shard) => Body::Hamt {
                root: shard,
                estimate: None,
            },
        };
        Ok(Arc::new(Dir {
            st: Mutex::new(State {
                cached: Some((cid, tsize)),
                body,
            }),
            dirty: AtomicBool::new(false),
            parent: Mutex::new(parent),
        }))
    }

    /// Sets the parent used for dirty propagation.
    pub fn set_parent(&self, parent: Weak<Dir>) {
        *self.parent.lock() = parent;
    }

    /// Marks this directory and its ancestors as changed.
    pub fn mark_dirty(self: &Arc<Self>) {
        let mut cur = Some(self.clone());
        while let Some(d) = cur {
            d.dirty.store(true, Ordering::SeqCst);
            cur = d.parent.lock().upgrade();
        }
    }

    /// The entry `name`, loading it if it is a directory.
    pub fn lookup(self: &Arc<Self>, name: &str, store: &FlatFs) -> Result<Option<Node>> {
        let mut st = self.st.lock();
        let entry = match &mut st.body {
            Body::Flat { entries, .. } => entries.get_mut(name),
            Body::Hamt { root, .. } => root.get(name, store)?,
        };
        match entry {
            None => Ok(None),
            Some(e) => node_of(e, store, self).map(Some),
        }
    }

    /// Adds or (with `overwrite`) replaces an entry. Without `overwrite`,
    /// an existing entry is `AlreadyExists`. Marks the tree dirty.
    pub fn insert(
        self: &Arc<Self>,
        name: &str,
        entry: Entry,
        overwrite: bool,
        store: &FlatFs,
    ) -> Result<()> {
        if let Entry::Dir(d) = &entry {
            d.set_parent(Arc::downgrade(self));
        }
        {
            let mut st = self.st.lock();
            let add = entry.estimate(name);
            match &mut st.body {
                Body::Flat { entries, estimate } => {
                    if !overwrite && entries.contains_key(name) {
                        return Err(IpfsError::AlreadyExists(name.to_string()));
                    }
                    if let Some(old) = entries.insert(name.to_string(), entry) {
                        *estimate -= old.estimate(name);
                    }
                    *estimate += add;
                    if *estimate > SHARD_THRESHOLD {
                        let est = *estimate;
                        let mut root = Shard::new();
                        for (n, e) in std::mem::take(entries) {
                            root.insert(n, e, store)?;
                        }
                        st.body = Body::Hamt {
                            root,
                            estimate: Some(est),
                        };
                    }
                }
                Body::Hamt { root, estimate } => {
                    if !overwrite && root.get(name, store)?.is_some() {
                        return Err(IpfsError::AlreadyExists(name.to_string()));
                    }
                    let old = root.insert(name.to_string(), entry, store)?;
                    if let Some(est) = estimate {
                        *est = *est + add - old.map_or(0, |o| o.estimate(name));
                    }
                }
            }
        }
        self.mark_dirty();
        Ok(())
    }

    /// Removes an entry; returns it (`None` if absent).
    pub fn remove(self: &Arc<Self>, name: &str, store: &FlatFs) -> Result<Option<Entry>> {
        let removed = {
            let mut st = self.st.lock();
            match &mut st.body {
                Body::Flat { entries, estimate } => {
                    let old = entries.remove(name);
                    if let Some(o) = &old {
                        *estimate -= o.estimate(name);
                    }
                    old
                }
                Body::Hamt { root, estimate } => {
                    let old = root.remove(name, store)?;
                    if let Some(o) = &old {
                        let est = match estimate {
                            Some(e) => *e - o.estimate(name),
                            None => {
                                let mut total = 0;
                                root.for_each(store, &mut |n, e| {
                                    total += e.estimate(n);
                                    Ok(())
                                })?;
                                total
                            }
                        };
                        *estimate = Some(est);
                        if est <= SHARD_THRESHOLD {
                            let old_root = std::mem::take(root);
                            let entries: BTreeMap<String, Entry> =
                                old_root.into_entries(store)?.into_iter().collect();
                            st.body = Body::Flat {
                                entries,
                                estimate: est,
                            };
                        }
                    }
                    old
                }
            }
        };
        if let Some(Entry::Dir(d)) = &removed {
            d.set_parent(Weak::new());
        }
        if removed.is_some() {
            self.mark_dirty();
        }
        Ok(removed)
    }

    /// Every entry as `(name, kind, size, cid)`, sorted by name. Flushes
    /// changed subdirectories to learn their CIDs.
    pub fn list(self: &Arc<Self>, store: &FlatFs) -> Result<Vec<(String, EntryKind, u64, Cid)>> {
        let mut nodes: Vec<(String, Node)> = Vec::new();
        {
            let mut st = self.st.lock();
            let mut visit = |n: &str, e: &mut Entry| -> Result<()> {
                nodes.push((n.to_string(), node_of(e, store, self)?));
                Ok(())
            };
            match &mut st.body {
                Body::Flat { entries, .. } => {
                    for (n, e) in entries.iter_mut() {
                        visit(n, e)?;
                    }
                }
                Body::Hamt { root, .. } => root.for_each(store, &mut visit)?,
            }
        }
        let mut out = Vec::with_capacity(nodes.len());
        for (name, node) in nodes {
            out.push(match node {
                Node::File { cid, size, .. } => (name, EntryKind::File, size, cid),
                Node::Dir(d) => (name, EntryKind::Directory, 0, flush_dir(&d, store)?.0),
            });
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    fn needs_flush(&self) -> bool {
        self.dirty.load(Ordering::SeqCst) || self.st.lock().cached.is_none()
    }
}

/// Writes the changed part of the tree under `dir` and returns its CID and
/// cumulative size. The directory's lock is not held while its children
/// are flushed, so writers elsewhere are not blocked by a large flush.
pub(crate) fn flush_dir(dir: &Arc<Dir>, store: &FlatFs) -> Result<(Cid, u64)> {
    let children: Vec<Arc<Dir>> = {
        let st = dir.st.lock();
        if !dir.dirty.load(Ordering::SeqCst)
            && let Some(c) = st.cached
        {
            return Ok(c);
        }
        // Cleared before reading the entries: a change made after this
        // point sets it again and is picked up by the next flush.
        dir.dirty.store(false, Ordering::SeqCst);
        let mut v = Vec::new();
        match &st.body {
            Body::Flat { entries, .. } => {
                for e in entries.values() {
                    if let Entry::Dir(d) = e {
                        v.push(d.clone());
                    }
                }
            }
            Body::Hamt { root, .. } => root.for_each_loaded(&mut |e| {
                if let Entry::Dir(d) = e {
                    v.push(d.clone());
                }
            }),
        }
        v
    };
    let result = (|| {
        for c in children {
            if c.needs_flush() {
                flush_dir(&c, store)?;
            }
        }
        let mut st = dir.st.lock();
        let mut link_of = |e: &Entry| -> Result<(Cid, u64)> {
            match e {
                Entry::Link(l) => Ok((l.cid, l.tsize)),
                Entry::Dir(d) => flush_dir(d, store),
            }
        };
        let out = match &mut st.body {
            Body::Flat { entries, .. } => {
                let mut links = Vec::with_capacity(entries.len());
                for (n, e) in entries.iter() {
                    let (cid, tsize) = link_of(e)?;
                    links.push((n.as_str(), cid, tsize));
                }
                let (block, cumulative) = encode_flat(links.into_iter());
                store.put(&block.cid, &block.data)?;
                (block.cid, cumulative)
            }
            Body::Hamt { root, .. } => root.flush(store, &mut link_of)?,
        };
        st.cached = Some(out);
        Ok(out)
    })();
    if result.is_err() {
        dir.dirty.store(true, Ordering::SeqCst);
    }
    result
}
