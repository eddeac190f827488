//! Fetching a whole DAG with many blocks in flight (used by tests and the
//! benchmark; the store's MFS walks DAGs its own way through `fetch`).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use cid::Cid;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::Bitswap;
use crate::ipfs::unixfs::dagpb::links_of;
use crate::ipfs::{IpfsError, Result};

/// What [`fetch_dag`] fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DagStats {
    /// Distinct blocks.
    pub blocks: u64,
    /// Their total size.
    pub bytes: u64,
}

/// Fetches every block reachable from `root` (dag-pb links), keeping up to
/// `concurrency` fetches in flight, leftmost blocks first. Each block is
/// bounded by `timeout`.
pub async fn fetch_dag(
    bitswap: &Bitswap,
    root: &Cid,
    timeout: Duration,
    concurrency: usize,
) -> Result<DagStats> {
    let mut queue = VecDeque::from([*root]);
    let mut seen = HashSet::from([*root]);
    let mut inflight = FuturesUnordered::new();
    let mut stats = DagStats::default();
    loop {
        while inflight.len() < concurrency.max(1) {
            let Some(cid) = queue.pop_front() else { break };
            inflight.push(async move { (cid, bitswap.fetch(&cid, timeout).await) });
        }
        let Some((cid, res)) = inflight.next().await else {
            return Ok(stats);
        };
        let data = res?;
        stats.blocks += 1;
        stats.bytes += data.len() as u64;
        let links =
            links_of(&cid, &data).map_err(|e| IpfsError::Invalid(format!("block {cid}: {e}")))?;
        for l in links.into_iter().rev() {
            if seen.insert(l) {
                queue.push_front(l);
            }
        }
    }
}
