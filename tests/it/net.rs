//! Networking of the embedded IPFS node: several in-process nodes on
//! 127.0.0.1 (or inside a private network namespace for mDNS) exchanging
//! real UnixFS DAGs over bitswap, finding each other through the DHT and
//! mDNS, gated by swarm keys, and surviving bad or vanishing peers.

use std::sync::Arc;
use std::time::Duration;

use disco::ipfs::Cid;
use disco::ipfs::IpfsError;
use disco::ipfs::block::verify;
use disco::ipfs::embedded::BlockExchange;
use disco::ipfs::embedded::net::NetConfig;
use disco::ipfs::embedded::net::config::DhtMode;
use disco::ipfs::embedded::net::dag::fetch_dag;

use crate::net_support::*;

const LONG: Duration = Duration::from_secs(60);

fn peers_of(n: &disco::ipfs::embedded::net::Network) -> Vec<libp2p::PeerId> {
    n.connected_peers().into_iter().map(|(p, _)| p).collect()
}

/// Every block in the store hashes to its key.
fn assert_all_verified(store: &MemStore, blocks: &[(Cid, bytes::Bytes)]) {
    for (cid, _) in blocks {
        if let Some(b) = store.get_sync(cid) {
            verify(cid, &b).expect("stored block matches its CID");
        }
    }
    for (mh, data) in store.all() {
        let mh = multihash::Multihash::<64>::from_bytes(&mh).unwrap();
        let raw = Cid::new_v1(disco::ipfs::RAW, mh);
        let pb = Cid::new_v1(disco::ipfs::DAG_PB, mh);
        assert!(verify(&raw, &data).is_ok() || verify(&pb, &data).is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_a_multi_block_dag() {
    let (a, sa) = node().await;
    let (b, sb) = node().await;
    let data = pattern(10_498_105);
    let (root, blocks) = import(&data);
    assert_eq!(
        root.to_string(),
        "bafybeihfllguj7wx7xvchkuhq3injfngwvrrzso6encbzhxyystcraf7ve"
    );
    sa.insert_all(&blocks);

    b.connect(&addr_of(&a)).await.unwrap();
    assert!(peers_of(&b).contains(&a.peer_id()));
    let stats = fetch_dag(b.bitswap(), &root, LONG, 64).await.unwrap();
    assert_eq!(stats.blocks, blocks.len() as u64);
    assert_eq!(export(&sb, &root), data);
    assert_eq!(sb.len(), blocks.len());
    assert_all_verified(&sb, &blocks);

    let (ma, mb) = (a.metrics(), b.metrics());
    assert_eq!(mb.blocks_received.get(), blocks.len() as u64);
    assert_eq!(mb.bytes_received.get(), stats.bytes);
    assert_eq!(mb.blocks_rejected.get(), 0);
    assert!(ma.blocks_sent.get() >= blocks.len() as u64);
    assert_eq!(mb.wants_outstanding.get(), 0);
    assert_eq!(
        mb.peers.get(),
        1,
        "{:?} (a = {})",
        b.connected_peers(),
        a.peer_id()
    );

    // B now serves the content too: with A gone, a third node gets it
    // from B alone.
    drop(a);
    let (c, sc) = node().await;
    c.connect(&addr_of(&b)).await.unwrap();
    fetch_dag(c.bitswap(), &root, LONG, 64).await.unwrap();
    assert_eq!(export(&sc, &root), data);
    let peers = c.peers().await.unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p.ends_with(&format!("/p2p/{}", b.peer_id()))),
        "{peers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_node_finds_the_provider_through_the_dht() {
    let (hub, _) = node().await;
    let mut cfg = NetConfig::loopback();
    cfg.bootstrap = vec![addr_of(&hub)];
    // A is a DHT client announcing a fixed address: it is in nobody's
    // routing table, so C can only learn of it from its provider record.
    let port = crate::support::registry::free_port();
    let a_cfg = NetConfig {
        listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        announce: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        dht_mode: Some(DhtMode::Client),
        ..cfg.clone()
    };
    let sa = MemStore::new();
    let a = node_with(a_cfg, sa.clone()).await;
    wait_for("hub to see A", LONG, || {
        peers_of(&hub).contains(&a.peer_id())
    })
    .await;
    let data = pattern(3 * CHUNK + 17);
    let (root, blocks) = import(&data);
    sa.insert_all(&blocks);
    a.announce(&root, true).await.unwrap();

    // C joins later, bootstrapped only to the hub.
    let sc = MemStore::new();
    let c = node_with(cfg, sc.clone()).await;
    wait_for("C to reach the hub", LONG, || {
        peers_of(&c).contains(&hub.peer_id())
    })
    .await;
    assert!(!peers_of(&c).contains(&a.peer_id()), "C only knows the hub");

    let stats = fetch_dag(c.bitswap(), &root, LONG, 16).await.unwrap();
    assert_eq!(stats.blocks, blocks.len() as u64);
    assert_eq!(export(&sc, &root), data);
    assert!(
        peers_of(&c).contains(&a.peer_id()),
        "C dialled the provider"
    );
    assert!(c.metrics().dht_queries.get() >= 1);
    assert_eq!(hub.metrics().blocks_sent.get(), 0, "the hub had no blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_key_gates_connections() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str, hex: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
        p
    };
    let k1 = key("one.key", &"ab".repeat(32));
    let k2 = key("two.key", &"cd".repeat(32));
    let with_key = |k: Option<std::path::PathBuf>| {
        let mut c = NetConfig::loopback();
        c.swarmkey = k;
        c
    };
    let sa = MemStore::new();
    let a = node_with(with_key(Some(k1.clone())), sa.clone()).await;
    let sb = MemStore::new();
    let b = node_with(with_key(Some(k1)), sb.clone()).await;
    let c = node_with(with_key(Some(k2)), MemStore::new()).await;
    let d = node_with(with_key(None), MemStore::new()).await;

    // Same key: connects and exchanges data.
    let (root, blocks) = import(&pattern(2 * CHUNK));
    sa.insert_all(&blocks);
    b.connect(&addr_of(&a)).await.unwrap();
    fetch_dag(b.bitswap(), &root, LONG, 8).await.unwrap();
    assert_eq!(export(&sb, &root), pattern(2 * CHUNK));

    // Different key, no key, and key towards no key: refused.
    assert!(c.connect(&addr_of(&a)).await.is_err());
    assert!(d.connect(&addr_of(&a)).await.is_err());
    assert!(a.connect(&addr_of(&d)).await.is_err());
    assert_eq!(peers_of(&a), vec![b.peer_id()]);
    assert!(peers_of(&d).is_empty());

    // QUIC is refused together with a swarm key.
    let mut bad = with_key(Some(dir.path().join("one.key")));
    bad.quic = true;
    let err = disco::ipfs::embedded::net::Network::start(
        &bad,
        libp2p::identity::Keypair::generate_ed25519(),
        MemStore::new(),
    )
    .await
    .err()
    .expect("QUIC with a swarm key is refused");
    assert!(err.to_string().contains("QUIC"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_banned_and_data_comes_from_another() {
    let data = pattern(6 * CHUNK + 5);
    let (root, blocks) = import(&data);
    let honest = MemStore::new();
    honest.insert_all(&blocks);
    let bad_blocks = MemStore::new();
    bad_blocks.insert_all(&blocks);
    let a = node_with(NetConfig::loopback(), honest.clone()).await;
    let m = node_with(NetConfig::loopback(), Arc::new(CorruptStore(bad_blocks))).await;
    let (c, sc) = node().await;

    // Only the corrupt peer at first.
    c.connect(&addr_of(&m)).await.unwrap();
    let fetch = {
        let c = c.clone();
        tokio::spawn(async move { fetch_dag(c.bitswap(), &root, LONG, 16).await })
    };
    let cm = c.metrics();
    wait_for("the corrupt block to be rejected", LONG, || {
        cm.blocks_rejected.get() >= 1
    })
    .await;
    assert_eq!(cm.peers_banned.get(), 1);
    assert_eq!(sc.len(), 0, "nothing corrupt was stored");
    wait_for("the corrupt peer to be dropped", LONG, || {
        !peers_of(&c).contains(&m.peer_id())
    })
    .await;

    // An honest provider appears; the fetch completes from it.
    c.connect(&addr_of(&a)).await.unwrap();
    let stats = fetch.await.unwrap().unwrap();
    assert_eq!(stats.blocks, blocks.len() as u64);
    assert_eq!(export(&sc, &root), data);
    assert_all_verified(&sc, &blocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_provider_mid_transfer_fetch_continues_or_times_out() {
    let data = pattern(120 * CHUNK + 3);
    let (root, blocks) = import(&data);
    let slow = |store: Arc<MemStore>| SlowStore::new(store, Duration::from_millis(15));
    let sa = MemStore::new();
    sa.insert_all(&blocks);
    let sb = MemStore::new();
    sb.insert_all(&blocks);
    let a = node_with(NetConfig::loopback(), slow(sa)).await;
    let b = node_with(NetConfig::loopback(), slow(sb)).await;
    let (c, sc) = node().await;
    c.connect(&addr_of(&a)).await.unwrap();
    c.connect(&addr_of(&b)).await.unwrap();

    let fetch = {
        let c = c.clone();
        tokio::spawn(async move { fetch_dag(c.bitswap(), &root, LONG, 64).await })
    };
    let cm = c.metrics();
    wait_for("some blocks to arrive", LONG, || {
        cm.blocks_received.get() >= 10
    })
    .await;
    assert!(
        cm.blocks_received.get() < blocks.len() as u64,
        "still transferring"
    );
    a.shutdown();
    drop(a);
    let stats = fetch.await.unwrap().unwrap();
    assert_eq!(stats.blocks, blocks.len() as u64);
    assert_eq!(export(&sc, &root), data);

    // Only provider killed: a clean timeout, and only whole, verified
    // blocks were stored.
    let data = pattern(60 * CHUNK + 9);
    let (root, blocks) = import(&data);
    let sd = MemStore::new();
    sd.insert_all(&blocks);
    let d = node_with(NetConfig::loopback(), slow(sd)).await;
    let (e, se) = node().await;
    e.connect(&addr_of(&d)).await.unwrap();
    let fetch = {
        let e = e.clone();
        tokio::spawn(async move { fetch_dag(e.bitswap(), &root, Duration::from_secs(3), 64).await })
    };
    let em = e.metrics();
    wait_for("some blocks to arrive", LONG, || {
        em.blocks_received.get() >= 5
    })
    .await;
    d.shutdown();
    drop(d);
    match fetch.await.unwrap() {
        Err(IpfsError::Timeout(msg)) => assert!(msg.contains("not received"), "{msg}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(se.len() < blocks.len());
    assert_all_verified(&se, &blocks);
}

#[test]
fn mdns_peers_find_each_other_without_bootstrap() {
    in_private_netns(|| {
        netns_runtime().block_on(async {
            let cfg = NetConfig {
                listen: vec!["/ip4/0.0.0.0/tcp/0".into()],
                mdns: true,
                ..NetConfig::default()
            };
            let sa = MemStore::new();
            let a = node_with(cfg.clone(), sa.clone()).await;
            let sb = MemStore::new();
            let b = node_with(cfg, sb.clone()).await;
            wait_for("mDNS discovery", LONG, || {
                peers_of(&a).contains(&b.peer_id()) && peers_of(&b).contains(&a.peer_id())
            })
            .await;
            let (root, blocks) = import(&pattern(CHUNK + 1));
            sa.insert_all(&blocks);
            fetch_dag(b.bitswap(), &root, LONG, 8).await.unwrap();
            assert_eq!(export(&sb, &root), pattern(CHUNK + 1));
        });
    });
}

/// Twenty holders are asked for the same blocks at once (one want-block,
/// nineteen want-haves each, for every block of a DAG): their answers
/// arrive together, many on new streams; none is dropped and no message
/// is lost on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_want_answered_by_twenty_peers_at_once_loses_nothing() {
    let data = pattern(3 * 1024 * 1024 + 99);
    let (root, blocks) = import(&data);
    let mut holders = Vec::new();
    for _ in 0..20 {
        let (n, s) = node().await;
        s.insert_all(&blocks);
        holders.push(n);
    }
    let (puller, sp) = node().await;
    for h in &holders {
        puller.connect(&addr_of(h)).await.unwrap();
    }
    let stats = fetch_dag(puller.bitswap(), &root, LONG, 64).await.unwrap();
    assert_eq!(stats.blocks, blocks.len() as u64);
    assert_eq!(export(&sp, &root), data);
    for n in holders.iter().chain([&puller]) {
        let m = n.metrics();
        assert_eq!(m.streams_dropped.get(), 0, "inbound streams dropped");
        assert_eq!(m.sends_failed.get(), 0, "bitswap messages lost");
        assert_eq!(m.blocks_rejected.get(), 0);
    }
    // Every holder was asked and answered (presences or blocks).
    assert_eq!(puller.connected_peers().len(), 20);
}

/// A reuse-port dial binds the listen port; when another socket holds
/// that port the bind fails with EADDRINUSE and the dial is made again
/// from an ephemeral port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_falls_back_to_an_ephemeral_port_when_the_listen_port_is_taken() {
    let port = crate::support::registry::free_port();
    // Another socket (no SO_REUSEPORT) on the same port, another address.
    let squatter = std::net::TcpListener::bind(("127.0.0.2", port)).expect("bind 127.0.0.2");
    let store = MemStore::new();
    let a = node_with(
        NetConfig {
            listen: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
            ..NetConfig::loopback()
        },
        store.clone(),
    )
    .await;
    let (b, sb) = node().await;
    let data = pattern(300_000);
    let (root, blocks) = import(&data);
    sb.insert_all(&blocks);
    a.connect(&addr_of(&b)).await.expect("dial from a new port");
    assert!(peers_of(&a).contains(&b.peer_id()));
    fetch_dag(a.bitswap(), &root, LONG, 8).await.unwrap();
    assert_eq!(export(&store, &root), data);
    drop(squatter);
}

/// Providing many roots sends the records to the closest peers in one
/// batch (no lookup per key): every key is then found by a third node's
/// DHT lookup, and the announce metrics count the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_roots_are_found_by_lookups() {
    let (hub, _) = node().await;
    let (holder, hs) = node().await;
    let (seeker, ss) = node().await;
    holder.connect(&addr_of(&hub)).await.unwrap();
    seeker.connect(&addr_of(&hub)).await.unwrap();
    let mut roots = Vec::new();
    for i in 0..50u32 {
        let (root, blocks) = import(&pattern(1000 + i as usize));
        hs.insert_all(&blocks);
        roots.push(root);
    }
    // Wait until the holder knows the hub as a DHT server.
    wait_for("the hub in the holder's routing table", LONG, || {
        holder.bootstrap_status().routing_table > 0
    })
    .await;
    holder.announce_all(&roots).await.unwrap();
    wait_for("an announce run", LONG, || {
        holder.metrics().announce_runs.get() > 0 && holder.metrics().records_announced.get() >= 50
    })
    .await;
    assert_eq!(holder.metrics().announce_last_keys.get(), 50);
    // The hub answers from its store: the seeker finds the holder for a
    // key it never asked the holder about.
    let mut rx = seeker.find_providers(&roots[37], 8).await.unwrap();
    let mut found = Vec::new();
    while let Some((p, addrs)) = rx.recv().await {
        found.push((p, addrs));
    }
    let (_, addrs) = found
        .iter()
        .find(|(p, _)| *p == holder.peer_id())
        .expect("the holder is a provider");
    assert!(!addrs.is_empty(), "provider records carry addresses");
    fetch_dag(seeker.bitswap(), &roots[37], LONG, 8)
        .await
        .unwrap();
    assert_eq!(export(&ss, &roots[37]), pattern(1037));
}
