//! [`Router`]: one [`Ipfs`] over several Kubo nodes
//! (`storage.ipfs.router.nodes`).
//!
//! Each path with an identity lives on the node its hash picks (see
//! [`route`](super::route)); shared parent directories exist on several
//! nodes and are merged for listings. Copies and moves between nodes go
//! through `/ipfs/<cid>`: the target node connects to the source node,
//! fetches the whole DAG (`refs -r`), links it into its MFS, and for a move
//! the source is removed afterwards. A node that is down makes the calls
//! that need it fail with [`IpfsError::Unavailable`]; calls on content that
//! lives elsewhere are unaffected.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use tokio::sync::OnceCell;

use super::route::{Route, node_for, route};
use super::{KuboClient, KuboConfig};
use crate::ipfs::{
    Cid, EntryKind, Ipfs, IpfsError, MfsEntry, MfsStat, NodeIdentity, Result, WriteOptions,
};
use crate::storage::ByteStream;

/// How long a node may take to say whether it holds a block locally before
/// it is passed over.
const HOLDER_PROBE: Duration = Duration::from_millis(1500);

/// Several Kubo nodes behind one [`Ipfs`].
pub struct Router {
    nodes: Vec<KuboClient>,
    ids: Vec<OnceCell<NodeIdentity>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.nodes.iter()).finish()
    }
}

impl Router {
    /// A router over `cfg.nodes` (at least one).
    pub fn new(cfg: &KuboConfig) -> Result<Self> {
        let nodes = cfg
            .nodes
            .iter()
            .map(|n| KuboClient::new(&n.url, cfg))
            .collect::<Result<Vec<_>>>()?;
        Self::from_clients(nodes)
    }

    /// A router over existing clients (at least one).
    pub fn from_clients(nodes: Vec<KuboClient>) -> Result<Self> {
        if nodes.is_empty() {
            return Err(IpfsError::Invalid(
                "storage.ipfs.router.nodes is empty".into(),
            ));
        }
        let ids = nodes.iter().map(|_| OnceCell::new()).collect();
        Ok(Self { nodes, ids })
    }

    /// The nodes, in configuration order.
    pub fn nodes(&self) -> &[KuboClient] {
        &self.nodes
    }

    /// The node holding `path`, or `None` for a shared path.
    pub fn node_index(&self, path: &str) -> Option<usize> {
        match route(path) {
            Route::Keyed(id) => Some(node_for(&id, self.nodes.len())),
            Route::Shared => None,
        }
    }

    /// Where new content at `path` goes: its node, or the first node for
    /// shared paths.
    fn home(&self, path: &str) -> usize {
        self.node_index(path).unwrap_or(0)
    }

    async fn identity(&self, i: usize) -> Result<&NodeIdentity> {
        self.ids[i].get_or_try_init(|| self.nodes[i].id()).await
    }

    /// Connects node `to` to node `from` (best effort: an error is logged
    /// and the fetch that follows reports the real failure).
    async fn connect(&self, from: usize, to: usize) -> Result<()> {
        let id = self.identity(from).await?;
        let mut last = None;
        for addr in &id.addresses {
            let full = if addr.contains("/p2p/") || addr.contains("/ipfs/") {
                addr.clone()
            } else {
                format!("{addr}/p2p/{}", id.peer_id)
            };
            match self.nodes[to].swarm_connect(&full).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            tracing::warn!(from = %self.nodes[from].url(), to = %self.nodes[to].url(), error = %e,
                "could not connect IPFS nodes");
        }
        Ok(())
    }

    /// Makes the DAG of `cid` (held by node `from`) complete on node `to`.
    async fn transfer(&self, from: usize, to: usize, cid: &Cid) -> Result<()> {
        self.connect(from, to).await?;
        let blocks = self.nodes[to].fetch_dag(cid).await?;
        tracing::debug!(%cid, blocks, from = %self.nodes[from].url(), to = %self.nodes[to].url(),
            "copied DAG between IPFS nodes");
        Ok(())
    }

    /// Nodes on which `path` exists, with its stat, for a shared path.
    async fn locate_all(&self, path: &str) -> Result<Vec<(usize, MfsStat)>> {
        let answers = join_all(self.nodes.iter().map(|n| n.files_stat(path))).await;
        let mut found = Vec::new();
        let mut failure = None;
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(st) => found.push((i, st)),
                Err(IpfsError::NotFound(_)) => {}
                Err(e) => failure = Some(e),
            }
        }
        if found.is_empty() {
            return Err(failure.unwrap_or_else(|| IpfsError::NotFound(path.to_string())));
        }
        Ok(found)
    }

    /// The node holding `path` and its stat.
    async fn locate(&self, path: &str) -> Result<(usize, MfsStat)> {
        match self.node_index(path) {
            Some(i) => Ok((i, self.nodes[i].files_stat(path).await?)),
            None => {
                let mut all = self.locate_all(path).await?;
                Ok(all.remove(0))
            }
        }
    }

    /// A node that holds block `cid` locally, else the first node (which
    /// may fetch it from its peers).
    async fn holder(&self, cid: &Cid) -> usize {
        if self.nodes.len() == 1 {
            return 0;
        }
        // The first node that has it answers at once; the others would
        // wait for the network until the probe times out.
        let probes = self.nodes.iter().enumerate().map(|(i, n)| {
            Box::pin(async move {
                match tokio::time::timeout(HOLDER_PROBE, n.block_stat_with(cid, HOLDER_PROBE)).await
                {
                    Ok(Ok(_)) => Ok(i),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(IpfsError::Timeout(String::new())),
                }
            })
        });
        futures::future::select_ok(probes)
            .await
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Copies `from` (on node `s`) to `to` on its home node.
    async fn copy_across(&self, s: usize, cid: &Cid, to: &str, parents: bool) -> Result<usize> {
        let d = self.home(to);
        self.transfer(s, d, cid).await?;
        let src = format!("/ipfs/{}", crate::ipfs::cid_v1_string(cid));
        self.nodes[d].files_cp(&src, to, parents).await?;
        Ok(d)
    }

    /// Runs `op` on every node; succeeds if one did, `NotFound` if all said
    /// so, else the first other error.
    async fn on_all<'a, F, Fut>(&'a self, path: &str, op: F) -> Result<()>
    where
        F: Fn(&'a KuboClient) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let answers = join_all(self.nodes.iter().map(op)).await;
        let mut ok = false;
        let mut failure = None;
        for a in answers {
            match a {
                Ok(()) => ok = true,
                Err(IpfsError::NotFound(_)) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match (failure, ok) {
            (Some(e), _) => Err(e),
            (None, true) => Ok(()),
            (None, false) => Err(IpfsError::NotFound(path.to_string())),
        }
    }
}

impl KuboClient {
    /// `block/stat` with an explicit network timeout.
    async fn block_stat_with(&self, cid: &Cid, timeout: Duration) -> Result<u64> {
        let call = self
            .network("block/stat", timeout)
            .arg("arg", crate::ipfs::cid_v1_string(cid));
        Ok(self.rpc.json::<super::types::BlockResp>(call).await?.size)
    }
}

#[async_trait]
impl Ipfs for Router {
    fn name(&self) -> &'static str {
        "kubo-router"
    }

    async fn files_mkdir(&self, path: &str, parents: bool) -> Result<()> {
        self.nodes[self.home(path)].files_mkdir(path, parents).await
    }

    async fn files_write(&self, path: &str, data: ByteStream, opts: WriteOptions) -> Result<()> {
        self.nodes[self.home(path)]
            .files_write(path, data, opts)
            .await
    }

    async fn files_read(&self, path: &str, offset: u64, count: Option<u64>) -> Result<ByteStream> {
        match self.node_index(path) {
            Some(i) => self.nodes[i].files_read(path, offset, count).await,
            None => {
                let mut first_err = None;
                for n in &self.nodes {
                    match n.files_read(path, offset, count).await {
                        Ok(s) => return Ok(s),
                        Err(IpfsError::NotFound(_)) => {}
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                Err(first_err.unwrap_or_else(|| IpfsError::NotFound(path.to_string())))
            }
        }
    }

    async fn files_stat(&self, path: &str) -> Result<MfsStat> {
        Ok(self.locate(path).await?.1)
    }

    async fn files_ls(&self, path: &str) -> Result<Vec<MfsEntry>> {
        if let Some(i) = self.node_index(path) {
            return self.nodes[i].files_ls(path).await;
        }
        let answers = join_all(self.nodes.iter().map(|n| n.files_ls(path))).await;
        let mut merged: std::collections::BTreeMap<String, MfsEntry> = Default::default();
        let mut any = false;
        for a in answers {
            match a {
                Ok(entries) => {
                    any = true;
                    for e in entries {
                        match merged.get(&e.name) {
                            // A directory on any node makes it a directory.
                            Some(old) if old.kind == EntryKind::Directory => {}
                            _ => {
                                merged.insert(e.name.clone(), e);
                            }
                        }
                    }
                }
                Err(IpfsError::NotFound(_)) => {}
                // A partial listing could make content look deleted.
                Err(e) => return Err(e),
            }
        }
        if !any {
            return Err(IpfsError::NotFound(path.to_string()));
        }
        Ok(merged.into_values().collect())
    }

    async fn files_cp(&self, from: &str, to: &str, parents: bool) -> Result<()> {
        let d = self.home(to);
        if from.starts_with("/ipfs/") {
            return self.nodes[d].files_cp(from, to, parents).await;
        }
        let (s, st) = self.locate(from).await?;
        if s == d {
            return self.nodes[d].files_cp(from, to, parents).await;
        }
        self.copy_across(s, &st.cid, to, parents).await.map(|_| ())
    }

    async fn files_mv(&self, from: &str, to: &str) -> Result<()> {
        if self.node_index(from).is_none() && self.node_index(to).is_none() {
            // A shared tree renamed to a shared place: each node moves its
            // part.
            let have = self.locate_all(from).await?;
            for (i, _) in have {
                self.nodes[i].files_mv(from, to).await?;
            }
            return Ok(());
        }
        let (s, st) = match self.node_index(from) {
            Some(i) => (i, self.nodes[i].files_stat(from).await?),
            None => {
                let have = self.locate_all(from).await?;
                if have.len() > 1 {
                    return Err(IpfsError::Other(format!(
                        "{from} exists on {} nodes; cannot move it to one",
                        have.len()
                    )));
                }
                have.into_iter()
                    .next()
                    .ok_or_else(|| IpfsError::NotFound(from.to_string()))?
            }
        };
        let d = self.home(to);
        // The destination's parent may be a shared directory that exists
        // on another node only.
        let parent = crate::storage::parent(to);
        if parent != "/" {
            self.nodes[d].files_mkdir(parent, true).await?;
        }
        if s == d {
            return self.nodes[s].files_mv(from, to).await;
        }
        // Copy, then remove the source: a failure leaves the source intact.
        self.copy_across(s, &st.cid, to, true).await?;
        self.nodes[s]
            .files_rm(from, st.kind == EntryKind::Directory)
            .await
    }

    async fn files_rm(&self, path: &str, recursive: bool) -> Result<()> {
        match self.node_index(path) {
            Some(i) => self.nodes[i].files_rm(path, recursive).await,
            None => self.on_all(path, |n| n.files_rm(path, recursive)).await,
        }
    }

    async fn files_flush(&self, path: &str) -> Result<Cid> {
        let (i, _) = self.locate(path).await?;
        self.nodes[i].files_flush(path).await
    }

    async fn add(&self, data: ByteStream, pin: bool) -> Result<Cid> {
        self.nodes[0].add(data, pin).await
    }

    async fn cat(&self, cid: &Cid, offset: u64, length: Option<u64>) -> Result<ByteStream> {
        let i = self.holder(cid).await;
        self.nodes[i].cat(cid, offset, length).await
    }

    async fn block_get(&self, cid: &Cid, timeout: Option<Duration>) -> Result<Bytes> {
        let i = self.holder(cid).await;
        self.nodes[i].block_get(cid, timeout).await
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid> {
        self.nodes[0].block_put(data, codec).await
    }

    async fn block_stat(&self, cid: &Cid) -> Result<u64> {
        let i = self.holder(cid).await;
        self.nodes[i].block_stat(cid).await
    }

    async fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<()> {
        let i = self.holder(cid).await;
        self.nodes[i].pin_add(cid, recursive).await
    }

    async fn pin_rm(&self, cid: &Cid) -> Result<()> {
        self.on_all(&cid.to_string(), |n| n.pin_rm(cid)).await
    }

    async fn swarm_connect(&self, addr: &str) -> Result<()> {
        let answers = join_all(self.nodes.iter().map(|n| n.swarm_connect(addr))).await;
        answers.into_iter().find(|a| a.is_err()).unwrap_or(Ok(()))
    }

    async fn id(&self) -> Result<NodeIdentity> {
        self.identity(0).await.cloned()
    }
}
