//! UnixFS: dag-pb codec, canonical file import (Kubo's `ipfs add
//! --cid-version=1` DAG), random-access export, and flat and HAMT-sharded
//! directories.
//!
//! Blocks move through two small seams: importers and directory encoders
//! write to a [`BlockSink`] (synchronous, called from blocking threads);
//! exporters read through a [`BlockSource`] (async, so a missing block may
//! come from the network) or a [`BlockGet`] (synchronous, local).

pub mod dagpb;
pub mod data;
pub mod dir;
pub mod export;
pub mod file;
pub mod hamt;
pub mod murmur3;
pub mod resolve;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;

use super::{IpfsError, Result};

pub use file::{CHUNK_SIZE, FileImporter, FileSummary, MAX_LINKS};

/// A block and its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID (CIDv1, sha2-256).
    pub cid: Cid,
    /// The encoded block.
    pub data: Bytes,
}

/// Where encoders put blocks. Synchronous: called from blocking threads.
pub trait BlockSink: Send + Sync + 'static {
    /// Stores a block whose CID was computed from `data` by the caller.
    fn put(&self, cid: &Cid, data: &Bytes) -> Result<()>;
}

/// Synchronous local block reads (directory and HAMT loading).
pub trait BlockGet {
    /// The block's bytes; `NotFound` if it is not stored.
    fn get_block(&self, cid: &Cid) -> Result<Bytes>;
}

/// Async block reads for exporters; a backend may fetch missing blocks
/// from the network.
#[async_trait]
pub trait BlockSource: Send + Sync + 'static {
    /// The block's bytes, verified against `cid`; `NotFound` if missing.
    async fn get(&self, cid: &Cid) -> Result<Bytes>;
}

/// An error for a block that does not decode as the UnixFS it claims to be.
pub(crate) fn corrupt(cid: &Cid, what: impl std::fmt::Display) -> IpfsError {
    IpfsError::Other(format!("corrupt UnixFS block {cid}: {what}"))
}

/// A [`BlockSink`] and [`BlockGet`] in memory, for tests and tools.
#[derive(Default)]
pub struct MemoryBlocks {
    blocks: parking_lot::Mutex<std::collections::HashMap<Cid, Bytes>>,
}

impl MemoryBlocks {
    /// Number of stored blocks.
    pub fn len(&self) -> usize {
        self.blocks.lock().len()
    }

    /// True if no block is stored.
    pub fn is_empty(&self) -> bool {
        self.blocks.lock().is_empty()
    }

    /// The block, if stored.
    pub fn get(&self, cid: &Cid) -> Option<Bytes> {
        self.blocks.lock().get(cid).cloned()
    }

    /// Stores a block as given (tests use this to plant bad blocks).
    pub fn put_raw(&self, cid: Cid, data: Bytes) {
        self.blocks.lock().insert(cid, data);
    }
}

impl BlockSink for MemoryBlocks {
    fn put(&self, cid: &Cid, data: &Bytes) -> Result<()> {
        self.blocks.lock().insert(*cid, data.clone());
        Ok(())
    }
}

impl BlockGet for MemoryBlocks {
    fn get_block(&self, cid: &Cid) -> Result<Bytes> {
        self.get(cid)
            .ok_or_else(|| IpfsError::NotFound(format!("block {cid}")))
    }
}

#[async_trait]
impl BlockSource for MemoryBlocks {
    async fn get(&self, cid: &Cid) -> Result<Bytes> {
        self.get_block(cid)
    }
}

/// A sink that keeps nothing (CID computation only).
pub struct NullSink;

impl BlockSink for NullSink {
    fn put(&self, _cid: &Cid, _data: &Bytes) -> Result<()> {
        Ok(())
    }
}
