//! The embedded IPFS node: an on-disk blockstore, UnixFS and MFS over it
//! (storage half), and libp2p networking with bitswap and the Kademlia DHT
//! (networking half). Both halves meet at the two traits below.

pub mod blockstore;
pub mod config;
mod gc;
mod identity;
mod mfs;
pub mod net;
mod node;
mod pins;

pub use config::{EmbeddedConfig, GcConfig};
pub use gc::GcStats;
pub use node::EmbeddedIpfs;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

use super::Result;

/// Blocks keyed by multihash. Callers verify a block against its CID before
/// `put`; implementations never expose a partially written block.
#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    /// The block's bytes, or `None` if it is not stored.
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>>;
    /// Whether the block is stored.
    async fn has(&self, cid: &Cid) -> Result<bool>;
    /// The block's size, if stored.
    async fn size(&self, cid: &Cid) -> Result<Option<u64>>;
    /// Stores a block (already verified against `cid`).
    async fn put(&self, cid: &Cid, data: Bytes) -> Result<()>;
}

/// The network side of the embedded node, as the store sees it: fetch blocks
/// it lacks and announce content it holds.
#[async_trait]
pub trait BlockExchange: Send + Sync + 'static {
    /// Fetches one block from peers, verified against `cid`. Many calls may
    /// be outstanding at once; implementations batch them into wantlists.
    /// Fails with `Timeout` when no peer delivers within `timeout`.
    async fn fetch(&self, cid: &Cid, timeout: Duration) -> Result<Bytes>;
    /// Announces (DHT provide) that this node holds `cid`.
    async fn provide(&self, cid: &Cid) -> Result<()>;
    /// Connects to a peer by multiaddr (with `/p2p/<id>`).
    async fn connect(&self, addr: &str) -> Result<()>;
    /// Connected peers as multiaddrs with `/p2p/<id>`.
    async fn peers(&self) -> Result<Vec<String>>;
    /// Addresses this node can be reached at (multiaddrs). Default none.
    fn addresses(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The peer id of the node whose data directory is `dir`, read from its
/// identity key (created, as the node would on first start, if missing)
/// without opening the store: works while a disco runs on `dir`.
pub fn peer_id_at(dir: &Path) -> Result<libp2p::PeerId> {
    std::fs::create_dir_all(dir)
        .map_err(|e| super::IpfsError::Other(format!("creating {}: {e}", dir.display())))?;
    let key = identity::load_or_create(&dir.join(identity::FILE))?;
    Ok(key.public().to_peer_id())
}

#[cfg(test)]
mod tests;
