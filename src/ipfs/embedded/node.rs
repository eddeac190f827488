//! [`EmbeddedIpfs`]: the in-process IPFS node (storage half) behind the
//! [`Ipfs`] trait: flatfs blockstore, canonical UnixFS import, MFS, pins,
//! GC, and DAG fetching through an optional [`BlockExchange`].

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use libp2p::identity::Keypair;
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;

use super::blockstore::{FlatFs, Session};
use super::config::EmbeddedConfig;
use super::gc::{GcStats, collect};
use super::mfs::dir::{Entry, Link, Node};
use super::mfs::{Mfs, split_path};
use super::pins::Pins;
use super::{BlockExchange, BlockStore};
use crate::ipfs::block::{IDENTITY, cid_v1, verify};
use crate::ipfs::unixfs::dagpb::{PbNode, links_of};
use crate::ipfs::unixfs::dir::{NodeKind, node_kind};
use crate::ipfs::unixfs::export::{decode_file_node, read_file};
use crate::ipfs::unixfs::resolve::resolve_path;
use crate::ipfs::unixfs::{BlockSource, CHUNK_SIZE, FileImporter, FileSummary};
use crate::ipfs::{
    DAG_PB, EntryKind, Ipfs, IpfsError, MfsEntry, MfsStat, NodeIdentity, RAW, Result, WriteOptions,
};
use crate::storage::ByteStream;

pub(super) struct Inner {
    cfg: EmbeddedConfig,
    pub(super) store: Arc<FlatFs>,
    mfs: Mfs,
    pins: Pins,
    keypair: Keypair,
    exchange: RwLock<Option<Arc<dyn BlockExchange>>>,
    gc_lock: tokio::sync::Mutex<()>,
    last_gc: Mutex<Option<(std::time::SystemTime, GcStats)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    _lock: fs::File,
}

/// The embedded IPFS node. Cheap to clone (shared state).
#[derive(Clone)]
pub struct EmbeddedIpfs {
    pub(super) inner: Arc<Inner>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IpfsError::Other(format!("blocking task failed: {e}")))?
}

fn lock_dir(dir: &Path) -> Result<fs::File> {
    let path = dir.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IpfsError::Other(format!("opening {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor owned by `f`.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(IpfsError::Unavailable(format!(
                "data directory {} is in use by another process",
                dir.display()
            )));
        }
    }
    Ok(f)
}

impl EmbeddedIpfs {
    /// Opens (creating) the node's data directory and starts the flush
    /// timer and the GC schedule. Fails if another process has it open.
    pub async fn open(cfg: EmbeddedConfig) -> Result<Self> {
        let c = cfg.clone();
        let inner = blocking(move || {
            fs::create_dir_all(&c.path)
                .map_err(|e| IpfsError::Other(format!("creating {}: {e}", c.path.display())))?;
            let lock = lock_dir(&c.path)?;
            let store = Arc::new(FlatFs::open(&c.path, c.verify_reads)?);
            let mfs = Mfs::open(store.clone(), &c.path)?;
            let pins = Pins::open(&c.path)?;
            let keypair = super::identity::load_or_create(&c.path.join(super::identity::FILE))?;
            Ok(Inner {
                cfg: c,
                store,
                mfs,
                pins,
                keypair,
                exchange: RwLock::new(None),
                gc_lock: tokio::sync::Mutex::new(()),
                last_gc: Mutex::new(None),
                tasks: Mutex::new(Vec::new()),
                _lock: lock,
            })
        })
        .await?;
        let node = EmbeddedIpfs {
            inner: Arc::new(inner),
        };
        node.start_tasks();
        tracing::info!(path = %cfg.path.display(), peer = %node.keypair().public().to_peer_id(), "embedded IPFS node open");
        Ok(node)
    }

    fn start_tasks(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.cfg.flush_interval.max(Duration::from_millis(10));
        let flush = tokio::spawn(periodic(weak.clone(), every, |inner| async move {
            let i = inner.clone();
            if let Err(e) = blocking(move || i.mfs.flush()).await {
                tracing::error!("MFS flush failed: {e}");
            }
        }));
        let mut tasks = vec![flush];
        if self.inner.cfg.gc.enabled {
            let every = self.inner.cfg.gc.interval.max(Duration::from_secs(1));
            tasks.push(tokio::spawn(periodic(weak, every, |inner| async move {
                if let Err(e) = (EmbeddedIpfs { inner }).gc().await {
                    tracing::error!("scheduled garbage collection failed: {e}");
                }
            })));
        }
        *self.inner.tasks.lock() = tasks;
    }

    /// The node's data directory.
    pub fn path(&self) -> std::path::PathBuf {
        self.inner.cfg.path.clone()
    }

    /// The node's identity key (the networking layer uses the same key).
    pub fn keypair(&self) -> &Keypair {
        &self.inner.keypair
    }

    /// Base58 peer id.
    pub fn peer_id(&self) -> String {
        self.inner.keypair.public().to_peer_id().to_base58()
    }

    /// Connects the network side; blocks missing locally are then fetched
    /// through it.
    pub fn set_exchange(&self, exchange: Arc<dyn BlockExchange>) {
        *self.inner.exchange.write() = Some(exchange);
    }

    /// The blockstore, for the network side to serve and store blocks.
    pub fn block_store(&self) -> Arc<dyn BlockStore> {
        Arc::new(self.inner.store.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.cfg
    }

    /// Runs a garbage collection now (one at a time).
    pub async fn gc(&self) -> Result<GcStats> {
        let _one = self.inner.gc_lock.lock().await;
        let inner = self.inner.clone();
        let stats = blocking(move || collect(&inner.mfs, &inner.pins, &inner.store)).await?;
        *self.inner.last_gc.lock() = Some((std::time::SystemTime::now(), stats));
        Ok(stats)
    }

    /// When the last garbage collection since start finished, and what it did.
    pub fn last_gc(&self) -> Option<(std::time::SystemTime, GcStats)> {
        *self.inner.last_gc.lock()
    }

    /// Stops the timers and flushes the MFS durably.
    pub async fn shutdown(&self) -> Result<()> {
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
        let inner = self.inner.clone();
        blocking(move || inner.mfs.flush().map(|_| ())).await
    }

    /// The last durably persisted MFS root.
    pub fn persisted_root(&self) -> Option<Cid> {
        self.inner.mfs.persisted_root()
    }

    fn source(&self) -> Arc<dyn BlockSource> {
        Arc::new(Source {
            inner: self.inner.clone(),
        })
    }

    fn exchange(&self) -> Option<Arc<dyn BlockExchange>> {
        self.inner.exchange.read().clone()
    }

    /// Makes sure the whole DAG under `root` is stored locally, fetching
    /// missing blocks through the exchange (bounded concurrency). Every
    /// block is recorded in `session` so a concurrent GC keeps it.
    async fn ensure_dag(&self, root: Cid, session: &Arc<Session>) -> Result<()> {
        let mut queue = vec![root];
        let mut seen = HashSet::new();
        let mut inflight = FuturesUnordered::new();
        let limit = self.inner.cfg.fetch_concurrency.max(1);
        loop {
            while inflight.len() < limit {
                let Some(cid) = queue.pop() else { break };
                if seen.insert(cid) {
                    inflight.push(self.ensure_block(cid, session.clone()));
                }
            }
            match inflight.next().await {
                None => return Ok(()),
                Some(links) => queue.extend(links?),
            }
        }
    }

    /// Ensures one block is stored; returns its links.
    async fn ensure_block(&self, cid: Cid, session: Arc<Session>) -> Result<Vec<Cid>> {
        if cid.hash().code() == IDENTITY {
            return Ok(if cid.codec() == DAG_PB {
                links_of(&cid, cid.hash().digest()).unwrap_or_default()
            } else {
                Vec::new()
            });
        }
        let s = session.clone();
        let local = blocking(move || {
            if cid.codec() != DAG_PB {
                if s.store().has_sync(&cid) {
                    s.touch(&cid);
                    return Ok(Some(Vec::new()));
                }
                return Ok(None);
            }
            match s.store().get_sync(&cid)? {
                Some(block) => {
                    s.touch(&cid);
                    Ok(Some(
                        links_of(&cid, &block)
                            .map_err(|e| IpfsError::Other(format!("{cid}: {e}")))?,
                    ))
                }
                None => Ok(None),
            }
        })
        .await?;
        if let Some(links) = local {
            return Ok(links);
        }
        let block = self
            .fetch_remote(&cid, self.inner.cfg.fetch_timeout)
            .await?;
        let links = links_of(&cid, &block).map_err(|e| IpfsError::Other(format!("{cid}: {e}")))?;
        blocking(move || crate::ipfs::unixfs::BlockSink::put(&*session, &cid, &block)).await?;
        Ok(links)
    }

    /// Fetches a block from the network, verified; `NotFound` without an
    /// exchange.
    async fn fetch_remote(&self, cid: &Cid, timeout: Duration) -> Result<Bytes> {
        let Some(ex) = self.exchange() else {
            return Err(IpfsError::NotFound(format!(
                "block {cid} (not stored, no network)"
            )));
        };
        let block = match tokio::time::timeout(timeout, ex.fetch(cid, timeout)).await {
            Ok(r) => r?,
            Err(_) => return Err(IpfsError::Timeout(format!("fetching block {cid}"))),
        };
        verify(cid, &block)
            .map_err(|e| IpfsError::Other(format!("block {cid} from the network: {e}")))?;
        Ok(block)
    }

    /// Imports the new content of a file: the kept prefix of `old`, the
    /// written bytes at `offset`, then the kept suffix of `old`.
    async fn import_write(
        &self,
        sink: Arc<Session>,
        old: Option<(Cid, u64)>,
        offset: u64,
        mut data: ByteStream,
    ) -> Result<FileSummary> {
        let mut imp = FileImporter::new(sink, FileImporter::default_parallelism());
        let old_size = old.map_or(0, |(_, s)| s);
        if offset > old_size {
            return Err(IpfsError::Invalid(format!(
                "offset {offset} is past the end of the file ({old_size} bytes)"
            )));
        }
        if let Some((old_cid, _)) = old
            && offset > 0
        {
            // Reuse whole leaves of the prefix where the old DAG has them.
            let store = self.inner.store.clone();
            let leaves = blocking(move || leaf_list(&store, old_cid)).await?;
            let mut pos = 0u64;
            for (cid, len) in leaves {
                if pos + len > offset || cid.codec() != RAW || len != CHUNK_SIZE as u64 {
                    break;
                }
                imp.push_leaf(cid, len).await?;
                pos += len;
            }
            if pos < offset {
                let mut s = read_file(self.source(), old_cid, pos, Some(offset - pos)).await?;
                while let Some(b) = s.try_next().await.map_err(io_to_ipfs)? {
                    imp.push(b).await?;
                }
            }
        }
        let mut written = 0u64;
        while let Some(b) = data
            .try_next()
            .await
            .map_err(|e| IpfsError::Other(format!("reading input: {e}")))?
        {
            written += b.len() as u64;
            imp.push(b).await?;
        }
        if let Some((old_cid, _)) = old {
            let end = offset + written;
            if end < old_size {
                let mut s = read_file(self.source(), old_cid, end, None).await?;
                while let Some(b) = s.try_next().await.map_err(io_to_ipfs)? {
                    imp.push(b).await?;
                }
            }
        }
        imp.finish().await
    }

    async fn mfs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mfs) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || f(&inner.mfs)).await
    }
}

fn io_to_ipfs(e: std::io::Error) -> IpfsError {
    match e.kind() {
        std::io::ErrorKind::NotFound => IpfsError::NotFound(e.to_string()),
        std::io::ErrorKind::TimedOut => IpfsError::Timeout(e.to_string()),
        _ => IpfsError::Other(e.to_string()),
    }
}

/// The `(leaf, bytes)` list of a stored file DAG, in file order, reading
/// only internal nodes. Stops at the first node with inline data (such a
/// DAG has no reusable raw leaves past that point).
fn leaf_list(store: &FlatFs, root: Cid) -> Result<Vec<(Cid, u64)>> {
    fn walk(store: &FlatFs, cid: Cid, out: &mut Vec<(Cid, u64)>) -> Result<bool> {
        let block = crate::ipfs::unixfs::BlockGet::get_block(store, &cid)?;
        let (inline, children, _) = decode_file_node(&cid, &block)?;
        if inline.is_some_and(|d| !d.is_empty()) {
            return Ok(false);
        }
        for (c, len) in children {
            if c.codec() == RAW {
                out.push((c, len));
            } else if !walk(store, c, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    if root.codec() == RAW {
        return Ok(vec![(root, store.size_sync(&root)?.unwrap_or(0))]);
    }
    let mut out = Vec::new();
    walk(store, root, &mut out)?;
    Ok(out)
}

async fn periodic<F, Fut>(weak: Weak<Inner>, every: Duration, f: F)
where
    F: Fn(Arc<Inner>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        f(inner).await;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
        if let Err(e) = self.mfs.flush() {
            tracing::error!("final MFS flush failed: {e}");
        }
    }
}

/// Blocks for exporters: local first, then the network.
struct Source {
    pub(super) inner: Arc<Inner>,
}

#[async_trait]
impl BlockSource for Source {
    async fn get(&self, cid: &Cid) -> Result<Bytes> {
        if cid.hash().code() == IDENTITY {
            return Ok(Bytes::copy_from_slice(cid.hash().digest()));
        }
        let (store, c) = (self.inner.store.clone(), *cid);
        if let Some(b) = blocking(move || store.get_sync(&c)).await? {
            return Ok(b);
        }
        let node = EmbeddedIpfs {
            inner: self.inner.clone(),
        };
        let block = node.fetch_remote(cid, self.inner.cfg.fetch_timeout).await?;
        let (store, c, b) = (self.inner.store.clone(), *cid, block.clone());
        blocking(move || store.put_sync(&c, &b)).await?;
        Ok(block)
    }
}

/// Kind and file size of a stored DAG root.
fn root_info(cid: &Cid, block: &[u8]) -> Result<(EntryKind, u64, u64)> {
    if cid.codec() == RAW {
        return Ok((EntryKind::File, block.len() as u64, block.len() as u64));
    }
    let node = PbNode::decode(block).map_err(|e| IpfsError::Other(format!("{cid}: {e}")))?;
    let tsize = block.len() as u64 + node.links.iter().filter_map(|l| l.tsize).sum::<u64>();
    match node_kind(cid, block)? {
        NodeKind::Directory | NodeKind::HamtShard => Ok((EntryKind::Directory, 0, tsize)),
        NodeKind::File => Ok((EntryKind::File, decode_file_node(cid, block)?.2, tsize)),
        NodeKind::Other => Err(IpfsError::Invalid(format!(
            "{cid} is neither a file nor a directory"
        ))),
    }
}

#[async_trait]
impl Ipfs for EmbeddedIpfs {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn files_mkdir(&self, path: &str, parents: bool) -> Result<()> {
        let path = path.to_string();
        self.mfs(move |m| m.mkdir(&path, parents)).await
    }

    async fn files_write(
        &self,
        path: &str,
        mut data: ByteStream,
        opts: WriteOptions,
    ) -> Result<()> {
        if opts.truncate && opts.offset == 0 {
            // Small replacement (the common case): read it whole, then one
            // blocking step hashes, stores and links it.
            let mut head: Vec<Bytes> = Vec::new();
            let mut len = 0usize;
            let mut ended = false;
            while len <= CHUNK_SIZE {
                match data
                    .try_next()
                    .await
                    .map_err(|e| IpfsError::Other(format!("reading input: {e}")))?
                {
                    Some(b) => {
                        len += b.len();
                        head.push(b);
                    }
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                let (inner, p) = (self.inner.clone(), path.to_string());
                return blocking(move || {
                    let (dir, name) = inner.mfs.parent_of(&p, opts.parents)?;
                    match dir.lookup(&name, &inner.store)? {
                        None if !opts.create => return Err(IpfsError::NotFound(p)),
                        Some(Node::Dir(_)) => return Err(IpfsError::NotAFile(p)),
                        _ => {}
                    }
                    let bytes = Bytes::from(head.concat());
                    let cid = crate::ipfs::block::raw_cid(&bytes);
                    let session = inner.store.session();
                    crate::ipfs::unixfs::BlockSink::put(&session, &cid, &bytes)?;
                    let link = Link {
                        cid,
                        tsize: bytes.len() as u64,
                        info: Some((EntryKind::File, bytes.len() as u64)),
                    };
                    dir.insert(&name, Entry::Link(link), true, &inner.store)
                })
                .await;
            }
            let head = futures::stream::iter(head.into_iter().map(Ok));
            data = Box::pin(head.chain(data));
        }
        let p = path.to_string();
        let parents = opts.parents;
        let (dir, name, existing) = self
            .mfs(move |m| {
                let (dir, name) = m.parent_of(&p, parents)?;
                let existing = dir.lookup(&name, m.store())?;
                Ok((dir, name, existing))
            })
            .await?;
        let old = match existing {
            None if !opts.create => return Err(IpfsError::NotFound(path.to_string())),
            None => None,
            Some(Node::Dir(_)) => return Err(IpfsError::NotAFile(path.to_string())),
            Some(Node::File { cid, size, .. }) => (!opts.truncate).then_some((cid, size)),
        };
        let session = Arc::new(self.inner.store.session());
        let summary = self
            .import_write(session.clone(), old, opts.offset, data)
            .await?;
        let inner = self.inner.clone();
        blocking(move || {
            let link = Link {
                cid: summary.cid,
                tsize: summary.cumulative_size,
                info: Some((EntryKind::File, summary.size)),
            };
            let r = dir.insert(&name, Entry::Link(link), true, &inner.store);
            drop(session);
            r
        })
        .await
    }

    async fn files_read(&self, path: &str, offset: u64, count: Option<u64>) -> Result<ByteStream> {
        let p = path.to_string();
        match self.mfs(move |m| m.resolve(&p)).await? {
            Node::File { cid, .. } => read_file(self.source(), cid, offset, count).await,
            Node::Dir(_) => Err(IpfsError::NotAFile(path.to_string())),
        }
    }

    async fn files_stat(&self, path: &str) -> Result<MfsStat> {
        let p = path.to_string();
        self.mfs(move |m| m.stat(&p)).await
    }

    async fn files_ls(&self, path: &str) -> Result<Vec<MfsEntry>> {
        let p = path.to_string();
        self.mfs(move |m| m.ls(&p)).await
    }

    async fn files_cp(&self, from: &str, to: &str, parents: bool) -> Result<()> {
        let Some(rest) = from.strip_prefix("/ipfs/") else {
            let (f, t) = (from.to_string(), to.to_string());
            return self.mfs(move |m| m.cp(&f, &t, parents)).await;
        };
        let mut parts = rest.split('/').filter(|s| !s.is_empty());
        let root: Cid = parts
            .next()
            .ok_or_else(|| IpfsError::Invalid(format!("no CID in {from}")))?
            .parse()
            .map_err(|e| IpfsError::Invalid(format!("bad CID in {from}: {e}")))?;
        let sub: Vec<&str> = parts.collect();
        let to_owned = to.to_string();
        split_path(&to_owned)?;
        let session = Arc::new(self.inner.store.session());
        let target = resolve_path(&*self.source(), root, &sub).await?;
        self.ensure_dag(target, &session).await?;
        let root_block = self.source().get(&target).await?;
        let (kind, size, tsize) = root_info(&target, &root_block)?;
        self.mfs(move |m| {
            let link = Link {
                cid: target,
                tsize,
                info: Some((kind, size)),
            };
            let r = m.link(&to_owned, link, parents, false);
            drop(session);
            r
        })
        .await
    }

    async fn files_mv(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (from.to_string(), to.to_string());
        self.mfs(move |m| m.mv(&f, &t)).await
    }

    async fn files_rm(&self, path: &str, recursive: bool) -> Result<()> {
        let p = path.to_string();
        self.mfs(move |m| m.rm(&p, recursive)).await
    }

    async fn files_flush(&self, path: &str) -> Result<Cid> {
        let p = path.to_string();
        self.mfs(move |m| m.flush_path(&p)).await
    }

    async fn add(&self, data: ByteStream, pin: bool) -> Result<Cid> {
        let session = Arc::new(self.inner.store.session());
        let summary = crate::ipfs::unixfs::file::import_stream(session.clone(), data).await?;
        if pin {
            let inner = self.inner.clone();
            blocking(move || {
                inner.store.sync()?;
                inner.pins.add(&summary.cid, true)
            })
            .await?;
        }
        drop(session);
        Ok(summary.cid)
    }

    async fn cat(&self, cid: &Cid, offset: u64, length: Option<u64>) -> Result<ByteStream> {
        read_file(self.source(), *cid, offset, length).await
    }

    async fn block_get(&self, cid: &Cid, timeout: Option<Duration>) -> Result<Bytes> {
        if cid.hash().code() == IDENTITY {
            return Ok(Bytes::copy_from_slice(cid.hash().digest()));
        }
        let (store, c) = (self.inner.store.clone(), *cid);
        if let Some(b) = blocking(move || store.get_sync(&c)).await? {
            return Ok(b);
        }
        let block = self
            .fetch_remote(cid, timeout.unwrap_or(self.inner.cfg.fetch_timeout))
            .await?;
        let (store, c, b) = (self.inner.store.clone(), *cid, block.clone());
        blocking(move || store.put_sync(&c, &b)).await?;
        Ok(block)
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid> {
        if codec == DAG_PB {
            PbNode::decode(&data)
                .map_err(|e| IpfsError::Invalid(format!("block is not dag-pb: {e}")))?;
        }
        let cid = cid_v1(codec, &data);
        let store = self.inner.store.clone();
        blocking(move || store.put_sync(&cid, &data)).await?;
        Ok(cid)
    }

    async fn block_stat(&self, cid: &Cid) -> Result<u64> {
        let (store, c) = (self.inner.store.clone(), *cid);
        match blocking(move || store.size_sync(&c)).await? {
            Some(n) => Ok(n),
            None => Ok(self.block_get(cid, None).await?.len() as u64),
        }
    }

    async fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<()> {
        let session = Arc::new(self.inner.store.session());
        if recursive {
            self.ensure_dag(*cid, &session).await?;
        } else {
            self.ensure_block(*cid, session.clone()).await?;
        }
        let (inner, c) = (self.inner.clone(), *cid);
        blocking(move || {
            // Pinned blocks are durable before the pin is.
            inner.store.sync()?;
            inner.pins.add(&c, recursive)
        })
        .await
    }

    async fn pin_rm(&self, cid: &Cid) -> Result<()> {
        let (inner, c) = (self.inner.clone(), *cid);
        blocking(move || inner.pins.remove(&c)).await
    }

    async fn swarm_connect(&self, addr: &str) -> Result<()> {
        match self.exchange() {
            Some(ex) => ex.connect(addr).await,
            None => Err(IpfsError::Unavailable(
                "the embedded node has no network".into(),
            )),
        }
    }

    async fn id(&self) -> Result<NodeIdentity> {
        Ok(NodeIdentity {
            peer_id: self.peer_id(),
            addresses: self.exchange().map(|ex| ex.addresses()).unwrap_or_default(),
            agent: format!("disco/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    async fn provide(&self, cid: &Cid) -> Result<()> {
        match self.exchange() {
            Some(ex) => ex.provide(cid).await,
            None => Ok(()),
        }
    }
}
