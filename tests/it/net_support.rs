//! Support for the networking tests: in-memory block stores (plain, slow,
//! corrupting), a minimal Kubo-compatible UnixFS file importer/exporter
//! (balanced DAG, 256 KiB raw leaves, 174 links), and node start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use disco::ipfs::block::{dag_pb_cid, raw_cid, verify};
use disco::ipfs::embedded::BlockStore;
use disco::ipfs::embedded::net::{NetConfig, Network};
use disco::ipfs::unixfs::dagpb::{
    PbLink, PbNode, get_bytes, get_key, get_varint, put_varint_field, skip_field,
};
use disco::ipfs::{Cid, Result};
use libp2p::identity::Keypair;
use parking_lot::Mutex;

/// Chunk size of Kubo's default chunker.
pub const CHUNK: usize = 262_144;
/// Links per node in Kubo's balanced layout.
pub const MAX_LINKS: usize = 174;

/// Blocks in a map.
#[derive(Default)]
pub struct MemStore {
    blocks: Mutex<HashMap<Vec<u8>, Bytes>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Stores blocks directly (test setup).
    pub fn insert_all(&self, blocks: &[(Cid, Bytes)]) {
        let mut m = self.blocks.lock();
        for (c, b) in blocks {
            m.insert(c.hash().to_bytes(), b.clone());
        }
    }

    /// Number of stored blocks.
    pub fn len(&self) -> usize {
        self.blocks.lock().len()
    }

    /// Stored bytes of a block.
    pub fn get_sync(&self, cid: &Cid) -> Option<Bytes> {
        self.blocks.lock().get(&cid.hash().to_bytes()).cloned()
    }

    /// Every stored block with its multihash.
    pub fn all(&self) -> Vec<(Vec<u8>, Bytes)> {
        self.blocks
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[async_trait]
impl BlockStore for MemStore {
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.get_sync(cid))
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.blocks.lock().contains_key(&cid.hash().to_bytes()))
    }
    async fn size(&self, cid: &Cid) -> Result<Option<u64>> {
        Ok(self.get_sync(cid).map(|b| b.len() as u64))
    }
    async fn put(&self, cid: &Cid, data: Bytes) -> Result<()> {
        verify(cid, &data).expect("only verified blocks are stored");
        self.blocks.lock().insert(cid.hash().to_bytes(), data);
        Ok(())
    }
}

/// A store that serves blocks one at a time with a delay (to make a
/// transfer last long enough to interrupt it).
pub struct SlowStore {
    /// The blocks.
    pub inner: Arc<MemStore>,
    /// Delay per block read.
    pub delay: Duration,
    gate: tokio::sync::Mutex<()>,
}

impl SlowStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<MemStore>, delay: Duration) -> Arc<Self> {
        Arc::new(SlowStore {
            inner,
            delay,
            gate: tokio::sync::Mutex::new(()),
        })
    }
}

#[async_trait]
impl BlockStore for SlowStore {
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let _g = self.gate.lock().await;
        tokio::time::sleep(self.delay).await;
        self.inner.get(cid).await
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        self.inner.has(cid).await
    }
    async fn size(&self, cid: &Cid) -> Result<Option<u64>> {
        self.inner.size(cid).await
    }
    async fn put(&self, cid: &Cid, data: Bytes) -> Result<()> {
        self.inner.put(cid, data).await
    }
}

/// A store that claims every block it holds but serves flipped bytes.
pub struct CorruptStore(pub Arc<MemStore>);

#[async_trait]
impl BlockStore for CorruptStore {
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.0.get_sync(cid).map(|b| {
            let mut v = b.to_vec();
            if let Some(x) = v.first_mut() {
                *x ^= 0xff;
            } else {
                v.push(0);
            }
            Bytes::from(v)
        }))
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        self.0.has(cid).await
    }
    async fn size(&self, cid: &Cid) -> Result<Option<u64>> {
        self.0.size(cid).await
    }
    async fn put(&self, cid: &Cid, data: Bytes) -> Result<()> {
        self.0.put(cid, data).await
    }
}

/// `len` bytes with byte i = i mod 251 (the vectors' pattern).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn unixfs_file(filesize: u64, blocksizes: &[u64]) -> Bytes {
    let mut d = Vec::new();
    put_varint_field(&mut d, 1, 2);
    put_varint_field(&mut d, 3, filesize);
    for b in blocksizes {
        put_varint_field(&mut d, 4, *b);
    }
    Bytes::from(d)
}

/// (cid, file bytes, cumulative DAG size)
type Built = (Cid, u64, u64);

fn build(leaves: &[Built], depth: u32, out: &mut Vec<(Cid, Bytes)>) -> Built {
    if depth == 0 {
        return leaves[0];
    }
    let per_child = MAX_LINKS.pow(depth - 1);
    let children: Vec<Built> = leaves
        .chunks(per_child)
        .map(|c| build(c, depth - 1, out))
        .collect();
    let node = PbNode {
        links: children
            .iter()
            .map(|(cid, _, tsize)| PbLink {
                cid: *cid,
                name: Some(String::new()),
                tsize: Some(*tsize),
            })
            .collect(),
        data: Some(unixfs_file(
            children.iter().map(|c| c.1).sum(),
            &children.iter().map(|c| c.1).collect::<Vec<_>>(),
        )),
    };
    let enc = Bytes::from(node.encode());
    let cid = dag_pb_cid(&enc);
    let cum = enc.len() as u64 + children.iter().map(|c| c.2).sum::<u64>();
    let size = children.iter().map(|c| c.1).sum();
    out.push((cid, enc));
    (cid, size, cum)
}

/// Imports `data` as `ipfs add --cid-version=1` does; returns the root and
/// every block.
pub fn import(data: &[u8]) -> (Cid, Vec<(Cid, Bytes)>) {
    let mut blocks = Vec::new();
    let mut leaves = Vec::new();
    for chunk in data.chunks(CHUNK) {
        let b = Bytes::copy_from_slice(chunk);
        let cid = raw_cid(&b);
        leaves.push((cid, b.len() as u64, b.len() as u64));
        blocks.push((cid, b));
    }
    if leaves.is_empty() {
        let cid = raw_cid(b"");
        return (cid, vec![(cid, Bytes::new())]);
    }
    if leaves.len() == 1 {
        return (leaves[0].0, blocks);
    }
    let mut depth = 1;
    while MAX_LINKS.pow(depth) < leaves.len() {
        depth += 1;
    }
    let root = build(&leaves, depth, &mut blocks);
    (root.0, blocks)
}

/// Reassembles a UnixFS file from a store.
pub fn export(store: &MemStore, root: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    export_into(store, root, &mut out);
    out
}

fn export_into(store: &MemStore, cid: &Cid, out: &mut Vec<u8>) {
    let block = store
        .get_sync(cid)
        .unwrap_or_else(|| panic!("block {cid} missing"));
    if cid.codec() == disco::ipfs::RAW {
        out.extend_from_slice(&block);
        return;
    }
    let node = PbNode::decode(&block).expect("dag-pb");
    if let Some(d) = &node.data {
        let mut buf: &[u8] = d;
        while !buf.is_empty() {
            match get_key(&mut buf).unwrap() {
                (2, 2) => out.extend_from_slice(get_bytes(&mut buf).unwrap()),
                (_, 0) => {
                    get_varint(&mut buf).unwrap();
                }
                (_, w) => skip_field(&mut buf, w).unwrap(),
            }
        }
    }
    for l in &node.links {
        export_into(store, &l.cid, out);
    }
}

/// A node on 127.0.0.1 with the given config tweaks.
pub async fn node_with(cfg: NetConfig, store: Arc<dyn BlockStore>) -> Network {
    Network::start(&cfg, Keypair::generate_ed25519(), store)
        .await
        .expect("network starts")
}

/// A plain loopback node over a fresh [`MemStore`].
pub async fn node() -> (Network, Arc<MemStore>) {
    let store = MemStore::new();
    (node_with(NetConfig::loopback(), store.clone()).await, store)
}

/// The first address of a node, with `/p2p/`.
pub fn addr_of(n: &Network) -> String {
    n.addresses().first().expect("node listens").to_string()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `f` on a thread moved into a fresh network namespace that has only
/// loopback and a veth pair (multicast-capable, private addresses that exist
/// only inside it) (requires root).
pub fn in_private_netns<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespace membership.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) failed (needs root): {}",
            std::io::Error::last_os_error()
        );
        for args in [
            &["link", "set", "lo", "up"][..],
            &[
                "link", "add", "mdns0", "type", "veth", "peer", "name", "mdns1",
            ],
            &["addr", "add", "10.250.0.1/24", "dev", "mdns0"],
            &["addr", "add", "10.250.0.2/24", "dev", "mdns1"],
            &["link", "set", "mdns0", "multicast", "on", "up"],
            &["link", "set", "mdns1", "multicast", "on", "up"],
        ] {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("`ip` (iproute2) is installed; run scripts/test to set up test deps");
            assert!(st.success(), "ip {args:?} failed");
        }
        f();
    })
    .join()
    .expect("netns test thread");
}

/// A two-worker tokio runtime (build it inside the namespace thread so its
/// workers live in that namespace too).
pub fn netns_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn importer_matches_kubo_vectors() {
    let cases: &[(Vec<u8>, &str)] = &[
        (
            vec![0u8; CHUNK + 1],
            "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki",
        ),
        (
            vec![0u8; 5 << 20],
            "bafybeid7mu43g4fehkxhdkl4x3lu4pybxuxpg57it6r6z7e36soj7h2yd4",
        ),
        (
            vec![0u8; 174 * CHUNK + 1],
            "bafybeihqwzd3o6q6v3pmwhzjy22vokhr767burokmqemg63hptx2nqd7ym",
        ),
        (
            pattern(10_498_105),
            "bafybeihfllguj7wx7xvchkuhq3injfngwvrrzso6encbzhxyystcraf7ve",
        ),
    ];
    for (data, want) in cases {
        let (root, blocks) = import(data);
        assert_eq!(root.to_string(), *want, "file of {} bytes", data.len());
        let store = MemStore::default();
        store.insert_all(&blocks);
        assert_eq!(&export(&store, &root), data);
    }
}
