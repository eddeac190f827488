//! Bitswap throughput benchmark between disco embedded nodes on loopback
//! (driven by `bench/net-bench.sh`).
//!
//! `net-bench serve <port> <MiB> <seed>`: holds a UnixFS file of `<MiB>` of
//! pseudo-random bytes (Kubo's `add --cid-version=1` DAG) in memory and
//! serves it; prints `ROOT <cid>` and `ADDR <multiaddr>`, then runs until
//! killed.
//!
//! `net-bench fetch <root> <addr>...`: connects to the providers and fetches
//! the whole DAG into a store that only counts bytes (so the fetcher's RSS
//! is networking, not storage); prints time to first byte (root plus the
//! first leaf), total time and throughput.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use disco::ipfs::block::{dag_pb_cid, raw_cid};
use disco::ipfs::embedded::net::dag::fetch_dag;
use disco::ipfs::embedded::net::{NetConfig, Network};
use disco::ipfs::embedded::{BlockExchange, BlockStore};
use disco::ipfs::unixfs::dagpb::{PbLink, PbNode, links_of, put_varint_field};
use disco::ipfs::{Cid, Result};
use libp2p::identity::Keypair;
use parking_lot::RwLock;

const CHUNK: usize = 262_144;
const MAX_LINKS: usize = 174;

#[derive(Default)]
struct MapStore(RwLock<HashMap<Vec<u8>, Bytes>>);

#[async_trait]
impl BlockStore for MapStore {
    async fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.0.read().get(&cid.hash().to_bytes()).cloned())
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.0.read().contains_key(&cid.hash().to_bytes()))
    }
    async fn size(&self, cid: &Cid) -> Result<Option<u64>> {
        Ok(self
            .0
            .read()
            .get(&cid.hash().to_bytes())
            .map(|b| b.len() as u64))
    }
    async fn put(&self, cid: &Cid, data: Bytes) -> Result<()> {
        self.0.write().insert(cid.hash().to_bytes(), data);
        Ok(())
    }
}

/// Keeps nothing, counts what was put.
#[derive(Default)]
struct CountingStore(AtomicU64);

#[async_trait]
impl BlockStore for CountingStore {
    async fn get(&self, _: &Cid) -> Result<Option<Bytes>> {
        Ok(None)
    }
    async fn has(&self, _: &Cid) -> Result<bool> {
        Ok(false)
    }
    async fn size(&self, _: &Cid) -> Result<Option<u64>> {
        Ok(None)
    }
    async fn put(&self, _: &Cid, data: Bytes) -> Result<()> {
        self.0.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn unixfs_file(sizes: &[u64]) -> Bytes {
    let mut d = Vec::new();
    put_varint_field(&mut d, 1, 2);
    put_varint_field(&mut d, 3, sizes.iter().sum());
    for s in sizes {
        put_varint_field(&mut d, 4, *s);
    }
    Bytes::from(d)
}

/// (cid, file size, cumulative size)
type Node = (Cid, u64, u64);

fn build(leaves: &[Node], depth: u32, store: &MapStore) -> Node {
    if depth == 0 {
        return leaves[0];
    }
    let kids: Vec<Node> = leaves
        .chunks(MAX_LINKS.pow(depth - 1))
        .map(|c| build(c, depth - 1, store))
        .collect();
    let node = PbNode {
        links: kids
            .iter()
            .map(|k| PbLink {
                cid: k.0,
                name: Some(String::new()),
                tsize: Some(k.2),
            })
            .collect(),
        data: Some(unixfs_file(&kids.iter().map(|k| k.1).collect::<Vec<_>>())),
    };
    let enc = Bytes::from(node.encode());
    let cid = dag_pb_cid(&enc);
    let cum = enc.len() as u64 + kids.iter().map(|k| k.2).sum::<u64>();
    store.0.write().insert(cid.hash().to_bytes(), enc);
    (cid, kids.iter().map(|k| k.1).sum(), cum)
}

fn generate(mib: usize, seed: u64, store: &MapStore) -> Cid {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut leaves = Vec::new();
    for _ in 0..(mib * 1024 * 1024).div_ceil(CHUNK) {
        let mut chunk = vec![0u8; CHUNK];
        for w in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        let b = Bytes::from(chunk);
        let cid = raw_cid(&b);
        leaves.push((cid, b.len() as u64, b.len() as u64));
        store.0.write().insert(cid.hash().to_bytes(), b);
    }
    let mut depth = 1;
    while MAX_LINKS.pow(depth) < leaves.len() {
        depth += 1;
    }
    build(&leaves, depth, store).0
}

fn config(port: u16) -> NetConfig {
    NetConfig {
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        mdns: false,
        ..NetConfig::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let port: u16 = args[2].parse().expect("port");
            let mib: usize = args[3].parse().expect("MiB");
            let seed: u64 = args[4].parse().expect("seed");
            let store = Arc::new(MapStore::default());
            let root = generate(mib, seed, &store);
            let net = Network::start(&config(port), Keypair::generate_ed25519(), store)
                .await
                .expect("start");
            println!("ROOT {root}");
            println!("ADDR {}", net.addresses()[0]);
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        Some("fetch") => {
            let root: Cid = args[2].parse().expect("root cid");
            let store = Arc::new(CountingStore::default());
            let net = Network::start(&config(0), Keypair::generate_ed25519(), store.clone())
                .await
                .expect("start");
            for a in &args[3..] {
                net.connect(a).await.expect("connect");
            }
            let timeout = Duration::from_secs(60);
            let start = Instant::now();
            // Time to first byte: the root, then down the leftmost path.
            let mut cid = root;
            loop {
                let b = net.fetch(&cid, timeout).await.expect("fetch");
                match links_of(&cid, &b).expect("links").first() {
                    Some(c) => cid = *c,
                    None => break,
                }
            }
            let ttfb = start.elapsed();
            let stats = fetch_dag(net.bitswap(), &root, timeout, 256)
                .await
                .expect("fetch dag");
            let total = start.elapsed();
            let mb = stats.bytes as f64 / 1e6;
            println!(
                "providers={} blocks={} bytes={} ttfb_ms={:.1} total_s={:.2} MB/s={:.0} MiB/s={:.0}",
                args.len() - 3,
                stats.blocks,
                stats.bytes,
                ttfb.as_secs_f64() * 1000.0,
                total.as_secs_f64(),
                mb / total.as_secs_f64(),
                stats.bytes as f64 / 1048576.0 / total.as_secs_f64(),
            );
            let m = net.metrics();
            println!(
                "received_blocks={} duplicates={} stored_bytes={}",
                m.blocks_received.get(),
                m.blocks_duplicate.get(),
                store.0.load(Ordering::Relaxed)
            );
        }
        _ => {
            eprintln!(
                "usage: net-bench serve <port> <MiB> <seed> | net-bench fetch <root> <addr>..."
            );
            std::process::exit(2);
        }
    }
}
