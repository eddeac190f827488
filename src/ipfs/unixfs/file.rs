//! Canonical streaming file import: Kubo's `ipfs add --cid-version=1` DAG
//! (raw leaves of 262144 bytes, balanced layout, at most 174 links per
//! node; a file of at most one chunk is its raw leaf).
//!
//! [`FileImporter`] consumes bytes incrementally; full chunks are hashed
//! and written on blocking threads, several at once (so both cores hash),
//! with a bounded number in flight, so memory stays at a few chunks
//! whatever the file size.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use cid::Cid;
use tokio::task::JoinHandle;

use super::dagpb::{PbLink, PbNode};
use super::data::{DataType, UnixFsData};
use super::{Block, BlockSink};
use crate::ipfs::block::{dag_pb_cid, raw_cid};
use crate::ipfs::{IpfsError, Result};

/// Chunk size of the fixed-size chunker (`size-262144`).
pub const CHUNK_SIZE: usize = 262_144;
/// Maximum links per file node (Kubo's balanced layout).
pub const MAX_LINKS: usize = 174;

/// The result of importing a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    /// Root CID.
    pub cid: Cid,
    /// File size in bytes.
    pub size: u64,
    /// Total size of the DAG's blocks (the link `Tsize` of the root).
    pub cumulative_size: u64,
}

/// A child link while the tree is built.
#[derive(Debug, Clone, Copy)]
struct TreeLink {
    cid: Cid,
    filesize: u64,
    tsize: u64,
}

/// The balanced layout, built bottom-up from leaves as they arrive:
/// `levels[k]` holds the pending children of the level-`k+1` node being
/// filled. A node is emitted once it is known to be full.
#[derive(Default)]
struct BalancedTree {
    levels: Vec<Vec<TreeLink>>,
    leaves: u64,
}

fn file_node(links: &[TreeLink]) -> (Block, TreeLink) {
    let mut data = UnixFsData::new(DataType::File);
    data.filesize = Some(links.iter().map(|l| l.filesize).sum());
    data.blocksizes = links.iter().map(|l| l.filesize).collect();
    let node = PbNode {
        links: links
            .iter()
            .map(|l| PbLink {
                cid: l.cid,
                name: Some(String::new()),
                tsize: Some(l.tsize),
            })
            .collect(),
        data: Some(Bytes::from(data.encode())),
    };
    let bytes = Bytes::from(node.encode());
    let cid = dag_pb_cid(&bytes);
    let link = TreeLink {
        cid,
        filesize: data.filesize.unwrap_or(0),
        tsize: bytes.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>(),
    };
    (Block { cid, data: bytes }, link)
}

impl BalancedTree {
    fn push(&mut self, leaf: TreeLink, out: &mut Vec<Block>) {
        self.leaves += 1;
        self.push_at(0, leaf, out);
    }

    /// Adds `link` to the node being filled at `level`; a full node is
    /// emitted first and its link carried one level up.
    fn push_at(&mut self, mut level: usize, mut link: TreeLink, out: &mut Vec<Block>) {
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::with_capacity(MAX_LINKS));
            }
            if self.levels[level].len() < MAX_LINKS {
                self.levels[level].push(link);
                return;
            }
            let full = std::mem::replace(&mut self.levels[level], Vec::with_capacity(MAX_LINKS));
            let (block, parent) = file_node(&full);
            out.push(block);
            self.levels[level].push(link);
            link = parent;
            level += 1;
        }
    }

    fn finish(mut self, out: &mut Vec<Block>) -> Option<TreeLink> {
        if self.leaves <= 1 {
            return self.levels.first().and_then(|l| l.first()).copied();
        }
        let mut level = 0;
        loop {
            let top = self.levels.len().checked_sub(1)?;
            let pending = std::mem::take(self.levels.get_mut(level)?);
            if level == top && pending.len() == 1 {
                return pending.first().copied();
            }
            let (block, link) = file_node(&pending);
            out.push(block);
            if level == top {
                return Some(link);
            }
            self.push_at(level + 1, link, out);
            level += 1;
        }
    }
}

enum Pending {
    Hashing(JoinHandle<Result<TreeLink>>),
    Ready(TreeLink),
}

/// Streaming canonical importer. Push bytes (and, at chunk boundaries,
/// existing full leaves), then [`FileImporter::finish`].
pub struct FileImporter {
    sink: Arc<dyn BlockSink>,
    buf: BytesMut,
    pending: VecDeque<Pending>,
    max_pending: usize,
    tree: BalancedTree,
    nodes: Vec<Block>,
    size: u64,
}

fn leaf_link(sink: &dyn BlockSink, chunk: Bytes) -> Result<TreeLink> {
    let cid = raw_cid(&chunk);
    sink.put(&cid, &chunk)?;
    let len = chunk.len() as u64;
    Ok(TreeLink {
        cid,
        filesize: len,
        tsize: len,
    })
}

impl FileImporter {
    /// An importer writing to `sink`, with up to `parallelism` chunks
    /// hashed and written at once (at least 1).
    pub fn new(sink: Arc<dyn BlockSink>, parallelism: usize) -> Self {
        FileImporter {
            sink,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            max_pending: parallelism.max(1),
            tree: BalancedTree::default(),
            nodes: Vec::new(),
            size: 0,
        }
    }

    /// Default parallelism: the number of CPUs plus two.
    pub fn default_parallelism() -> usize {
        // Cached: on Linux the lookup reads cgroup files.
        static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get())) + 2
    }

    /// Bytes pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes.
    pub async fn push(&mut self, mut data: Bytes) -> Result<()> {
        self.size += data.len() as u64;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= CHUNK_SIZE {
                let chunk = data.split_to(CHUNK_SIZE);
                self.submit(chunk).await?;
                continue;
            }
            if self.buf.capacity() < CHUNK_SIZE {
                self.buf.reserve(CHUNK_SIZE - self.buf.len());
            }
            let take = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data.advance(take);
            if self.buf.len() == CHUNK_SIZE {
                let chunk = self.buf.split().freeze();
                self.submit(chunk).await?;
            }
        }
        Ok(())
    }

    /// True when the bytes pushed so far end on a chunk boundary, so
    /// [`FileImporter::push_leaf`] may be used.
    pub fn at_chunk_boundary(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends an existing full raw leaf (`CHUNK_SIZE` bytes, already
    /// stored) without reading it. Only valid at a chunk boundary.
    pub async fn push_leaf(&mut self, cid: Cid, len: u64) -> Result<()> {
        if !self.buf.is_empty() || len != CHUNK_SIZE as u64 || cid.codec() != crate::ipfs::RAW {
            return Err(IpfsError::Invalid(
                "push_leaf needs a full raw leaf at a chunk boundary".into(),
            ));
        }
        self.size += len;
        self.make_room().await?;
        self.pending.push_back(Pending::Ready(TreeLink {
            cid,
            filesize: len,
            tsize: len,
        }));
        Ok(())
    }

    async fn make_room(&mut self) -> Result<()> {
        while self.pending.len() >= self.max_pending {
            self.complete_one().await?;
        }
        Ok(())
    }

    async fn submit(&mut self, chunk: Bytes) -> Result<()> {
        self.make_room().await?;
        let sink = self.sink.clone();
        let task = tokio::task::spawn_blocking(move || leaf_link(&*sink, chunk));
        self.pending.push_back(Pending::Hashing(task));
        Ok(())
    }

    async fn complete_one(&mut self) -> Result<()> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let link = match p {
            Pending::Ready(l) => l,
            Pending::Hashing(task) => task
                .await
                .map_err(|e| IpfsError::Other(format!("chunk hashing task failed: {e}")))??,
        };
        self.tree.push(link, &mut self.nodes);
        self.write_nodes()
    }

    fn write_nodes(&mut self) -> Result<()> {
        for b in self.nodes.drain(..) {
            self.sink.put(&b.cid, &b.data)?;
        }
        Ok(())
    }

    /// Writes the last chunk and the remaining nodes; returns the root.
    pub async fn finish(mut self) -> Result<FileSummary> {
        if !self.buf.is_empty() || (self.pending.is_empty() && self.tree.leaves == 0) {
            let chunk = self.buf.split().freeze();
            if self.pending.is_empty() {
                // Small file: no point in a thread hop.
                let link = leaf_link(&*self.sink, chunk)?;
                self.pending.push_back(Pending::Ready(link));
            } else {
                self.submit(chunk).await?;
            }
        }
        while !self.pending.is_empty() {
            self.complete_one().await?;
        }
        let tree = std::mem::take(&mut self.tree);
        let root = tree
            .finish(&mut self.nodes)
            .ok_or_else(|| IpfsError::Other("importer produced no root".into()))?;
        self.write_nodes()?;
        Ok(FileSummary {
            cid: root.cid,
            size: root.filesize,
            cumulative_size: root.tsize,
        })
    }
}

/// Imports a whole stream.
pub async fn import_stream(
    sink: Arc<dyn BlockSink>,
    mut data: crate::storage::ByteStream,
) -> Result<FileSummary> {
    use futures::TryStreamExt;
    let mut imp = FileImporter::new(sink, FileImporter::default_parallelism());
    while let Some(chunk) = data
        .try_next()
        .await
        .map_err(|e| IpfsError::Other(format!("reading input: {e}")))?
    {
        imp.push(chunk).await?;
    }
    imp.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::unixfs::{MemoryBlocks, NullSink};

    /// Imports `len` bytes produced by `byte(i)` in uneven pieces, keeping
    /// nothing but the CID computation.
    async fn import_gen(
        len: u64,
        byte: impl Fn(u64) -> u8,
        sink: Arc<dyn BlockSink>,
    ) -> FileSummary {
        let mut imp = FileImporter::new(sink, 4);
        let mut pos = 0u64;
        let piece = 1_000_003u64;
        let zeros = Bytes::from(vec![0u8; piece as usize]);
        let mut buf = Vec::with_capacity(piece as usize);
        let all_zero = (0..4).all(|i| byte(i) == 0);
        while pos < len {
            let n = piece.min(len - pos);
            if all_zero {
                imp.push(zeros.slice(..n as usize)).await.unwrap();
            } else {
                buf.clear();
                buf.extend((pos..pos + n).map(&byte));
                imp.push(Bytes::copy_from_slice(&buf)).await.unwrap();
            }
            pos += n;
        }
        imp.finish().await.unwrap()
    }

    async fn zeros(len: u64) -> String {
        import_gen(len, |_| 0, Arc::new(NullSink))
            .await
            .cid
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_file_vectors() {
        // From ipfs-vectors.md (`ipfs add --cid-version=1`).
        for (content, cid) in [
            (
                &b""[..],
                "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            ),
            (
                b"a",
                "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm",
            ),
            (
                b"abc",
                "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu",
            ),
            (
                b"hello world\n",
                "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
            ),
        ] {
            let sink = Arc::new(MemoryBlocks::default());
            let mut imp = FileImporter::new(sink.clone(), 2);
            imp.push(Bytes::from_static(content)).await.unwrap();
            let s = imp.finish().await.unwrap();
            assert_eq!(s.cid.to_string(), cid);
            assert_eq!(
                (s.size, s.cumulative_size),
                (content.len() as u64, content.len() as u64)
            );
            assert_eq!(sink.get(&s.cid).unwrap(), content);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zero_file_vectors() {
        let c = CHUNK_SIZE as u64;
        for (len, cid) in [
            (
                c,
                "bafkreiekhhjkxu4ztk3tyng3er3ijhg56mb44oe3gwbgquhzu4afrg2ksa",
            ),
            (
                c + 1,
                "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki",
            ),
            (
                5_242_880,
                "bafybeid7mu43g4fehkxhdkl4x3lu4pybxuxpg57it6r6z7e36soj7h2yd4",
            ),
            (
                174 * c,
                "bafybeibxsa3ioclowpaq7b6gxl65gzqneopfr3fnhedak6sqr4bjz5lnyq",
            ),
            (
                174 * c + 1,
                "bafybeihqwzd3o6q6v3pmwhzjy22vokhr767burokmqemg63hptx2nqd7ym",
            ),
            (
                52_428_800,
                "bafybeihaqwdzbwwcswc7zm3ohduemxxuqebbvzr7gs6hphxxkbc2mp666y",
            ),
        ] {
            assert_eq!(zeros(len).await, cid, "{len} zero bytes");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_level_vector() {
        // 174 × 174 × 262144 + 1 zero bytes (~7.4 GiB) streamed, not stored.
        let len = 174 * 174 * CHUNK_SIZE as u64 + 1;
        assert_eq!(
            zeros(len).await,
            "bafybeic3bmw3lls6npgpysoz7577inmexlh7ulmlepk4qypu72heonqfhu"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mod251_vectors() {
        for (len, cid) in [
            (
                1_048_583u64,
                "bafybeifofps7oqlveyur54t4opj4y6jhjlyc5du6zqjlf6lhakt2w2c25u",
            ),
            (
                10_498_105,
                "bafybeihfllguj7wx7xvchkuhq3injfngwvrrzso6encbzhxyystcraf7ve",
            ),
        ] {
            let s = import_gen(len, |i| (i % 251) as u8, Arc::new(NullSink)).await;
            assert_eq!(s.cid.to_string(), cid);
            assert_eq!(s.size, len);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn push_leaf_gives_same_dag() {
        let sink = Arc::new(MemoryBlocks::default());
        let data = Bytes::from(vec![7u8; CHUNK_SIZE * 3 + 10]);
        let mut a = FileImporter::new(sink.clone(), 3);
        a.push(data.clone()).await.unwrap();
        let a = a.finish().await.unwrap();
        let leaf = raw_cid(&data[..CHUNK_SIZE]);
        let mut b = FileImporter::new(sink.clone(), 3);
        b.push_leaf(leaf, CHUNK_SIZE as u64).await.unwrap();
        assert!(b.at_chunk_boundary());
        b.push(data.slice(CHUNK_SIZE..)).await.unwrap();
        let b = b.finish().await.unwrap();
        assert_eq!(a, b);
        let mut c = FileImporter::new(sink, 3);
        c.push(Bytes::from_static(b"x")).await.unwrap();
        assert!(c.push_leaf(leaf, CHUNK_SIZE as u64).await.is_err());
    }
}
