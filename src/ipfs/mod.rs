//! The IPFS interface disco stores content through: an MFS-like file tree
//! plus content and block operations. Two backends implement [`Ipfs`]:
//! external Kubo nodes over the Kubo RPC API ([`kubo`]) and the embedded
//! node ([`embedded`]).
//!
//! CIDs cross this interface as parsed [`Cid`] values and are compared
//! parsed, never as strings (a backend may answer in base58btc or base32).

pub mod block;
pub mod embedded;
pub mod kubo;
pub mod unixfs;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
pub use cid::Cid;

use crate::storage::ByteStream;

/// Multicodec of dag-pb nodes.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// Typed IPFS errors. Not-found is always [`IpfsError::NotFound`], whatever
/// text the backend used.
#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// No file, directory or block at that path / CID.
    #[error("not found: {0}")]
    NotFound(String),
    /// The destination already exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A path component that must be a directory is a file.
    #[error("not a directory: {0}")]
    NotADirectory(String),
    /// A file operation on a directory.
    #[error("not a file: {0}")]
    NotAFile(String),
    /// The operation ran out of time (content not found on the network,
    /// slow node).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The backend cannot be reached.
    #[error("IPFS backend unavailable: {0}")]
    Unavailable(String),
    /// Bad argument (invalid CID or path).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Anything else.
    #[error("IPFS error: {0}")]
    Other(String),
}

impl IpfsError {
    /// True for [`IpfsError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, IpfsError::NotFound(_))
    }
}

/// Result alias for IPFS operations.
pub type Result<T, E = IpfsError> = std::result::Result<T, E>;

/// Kind of an MFS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A UnixFS file (or raw leaf).
    File,
    /// A UnixFS directory, flat or HAMT-sharded.
    Directory,
}

/// What `files/stat` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfsStat {
    /// Root CID of the entry's DAG.
    pub cid: Cid,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// Total size of the DAG's blocks.
    pub cumulative_size: u64,
    /// File or directory.
    pub kind: EntryKind,
}

/// One entry of `files/ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfsEntry {
    /// Name within the directory.
    pub name: String,
    /// File or directory.
    pub kind: EntryKind,
    /// File size (0 for directories).
    pub size: u64,
    /// Root CID of the entry.
    pub cid: Cid,
}

/// Options of [`Ipfs::files_write`], as Kubo's `files/write`.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Create the file if missing.
    pub create: bool,
    /// Truncate the file before writing.
    pub truncate: bool,
    /// Create missing parent directories.
    pub parents: bool,
    /// Byte offset to start writing at.
    pub offset: u64,
}

/// The node's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// libp2p peer id, base58.
    pub peer_id: String,
    /// Multiaddrs the node listens on / announces.
    pub addresses: Vec<String>,
    /// Implementation and version, e.g. `kubo/0.22.0`.
    pub agent: String,
}

/// The IPFS operations disco needs. Paths are MFS paths (`/a/b`); the
/// source of `files_cp` may also be `/ipfs/<cid>[/sub/path]`.
///
/// Every file written through this interface has the canonical DAG of
/// `ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` (balanced,
/// 174 links per node), so the same bytes always have the same CID.
#[async_trait]
pub trait Ipfs: Send + Sync + 'static {
    /// Backend name for logs.
    fn name(&self) -> &'static str;

    /// `files/mkdir`, optionally creating parents. Existing directories are
    /// fine when `parents` is set.
    async fn files_mkdir(&self, path: &str, parents: bool) -> Result<()>;

    /// `files/write`: streams `data` into a file.
    async fn files_write(&self, path: &str, data: ByteStream, opts: WriteOptions) -> Result<()>;

    /// `files/read`: streams `count` bytes (all if `None`) from `offset`.
    async fn files_read(&self, path: &str, offset: u64, count: Option<u64>) -> Result<ByteStream>;

    /// `files/stat`.
    async fn files_stat(&self, path: &str) -> Result<MfsStat>;

    /// `files/ls` of a directory (sorted by name).
    async fn files_ls(&self, path: &str) -> Result<Vec<MfsEntry>>;

    /// `files/cp`: `from` is an MFS path or `/ipfs/<cid>...` (fetched from
    /// the network on demand). Fails with `AlreadyExists` if `to` exists.
    async fn files_cp(&self, from: &str, to: &str, parents: bool) -> Result<()>;

    /// `files/mv`.
    async fn files_mv(&self, from: &str, to: &str) -> Result<()>;

    /// `files/rm`, recursive for directories. Missing path is `NotFound`.
    async fn files_rm(&self, path: &str, recursive: bool) -> Result<()>;

    /// `files/flush`: persists the tree and returns the CID at `path`.
    async fn files_flush(&self, path: &str) -> Result<Cid>;

    /// Canonical import of a stream (`add --cid-version=1 --raw-leaves`);
    /// returns the root CID. With `pin`, the root is pinned.
    async fn add(&self, data: ByteStream, pin: bool) -> Result<Cid>;

    /// `cat` with offset and optional length.
    async fn cat(&self, cid: &Cid, offset: u64, length: Option<u64>) -> Result<ByteStream>;

    /// `block/get`, bounded by `timeout` when the block must come from the
    /// network.
    async fn block_get(&self, cid: &Cid, timeout: Option<Duration>) -> Result<Bytes>;

    /// `block/put` with the given codec (sha2-256, CIDv1); returns the CID.
    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid>;

    /// `block/stat`: the block's size.
    async fn block_stat(&self, cid: &Cid) -> Result<u64>;

    /// `pin/add`.
    async fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<()>;

    /// `pin/rm`.
    async fn pin_rm(&self, cid: &Cid) -> Result<()>;

    /// `swarm/connect` to a multiaddr (with `/p2p/<id>`).
    async fn swarm_connect(&self, addr: &str) -> Result<()>;

    /// `id`.
    async fn id(&self) -> Result<NodeIdentity>;

    /// Announces that this node provides `cid` (DHT provide). Backends that
    /// provide on their own (Kubo) do nothing.
    async fn provide(&self, _cid: &Cid) -> Result<()> {
        Ok(())
    }
}

/// The canonical text form of a CID: CIDv1, base32 lower case. CIDv0 input
/// is converted (same multihash, dag-pb codec).
pub fn cid_v1_string(cid: &Cid) -> String {
    to_v1(cid).to_string()
}

/// Converts a CIDv0 to the equivalent CIDv1; CIDv1 is returned unchanged.
pub fn to_v1(cid: &Cid) -> Cid {
    match cid.version() {
        cid::Version::V0 => Cid::new_v1(DAG_PB, *cid.hash()),
        cid::Version::V1 => *cid,
    }
}

/// True if two CIDs name the same content (same multihash and codec after
/// converting v0 to v1).
pub fn same_cid(a: &Cid, b: &Cid) -> bool {
    to_v1(a) == to_v1(b)
}
