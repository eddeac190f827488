//! Interop with a real Helia 7 node on 127.0.0.1: files of 1, 5 and
//! 100 MiB move both ways over bitswap; Helia (with Kubo's add settings) and
//! disco compute the same CIDs for the same bytes.

use std::time::Duration;

use disco::ipfs::Cid;
use disco::ipfs::embedded::BlockExchange;
use disco::ipfs::embedded::net::dag::fetch_dag;

use crate::net_support::*;
use crate::support::helia_peer::HeliaPeer;

/// Distinct content per size and direction.
fn content(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(salt).wrapping_mul(7))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_and_disco_exchange_files_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let mut helia = tokio::task::block_in_place(|| HeliaPeer::start(dir.path()));
    let (d, sd) = node().await;
    d.connect(&helia.p2p_addr()).await.unwrap();

    for (i, mib) in [1usize, 5, 100].into_iter().enumerate() {
        let len = mib * 1024 * 1024 + 7 * i;

        // Helia adds; disco fetches by CID. Same bytes, same CID.
        let data = content(len, i as u8);
        let path = dir.path().join(format!("helia-{mib}.bin"));
        std::fs::write(&path, &data).unwrap();
        let cid: Cid = tokio::task::block_in_place(|| helia.add(&path))
            .parse()
            .unwrap();
        let (expect, _) = import(&data);
        assert_eq!(cid, expect, "Helia and disco agree on the CID of {mib} MiB");
        fetch_dag(d.bitswap(), &cid, Duration::from_secs(60), 64)
            .await
            .unwrap();
        assert_eq!(export(&sd, &cid), data, "{mib} MiB from Helia");

        // disco holds; Helia fetches by CID.
        let data = content(len, 100 + i as u8);
        let (root, blocks) = import(&data);
        sd.insert_all(&blocks);
        d.provide(&root).await.unwrap();
        let dest = dir.path().join(format!("disco-{mib}.bin"));
        tokio::task::block_in_place(|| helia.download(&root.to_string(), &dest))
            .unwrap_or_else(|e| panic!("Helia download of {mib} MiB failed: {e}"));
        assert!(
            std::fs::read(&dest).unwrap() == data,
            "{mib} MiB from disco"
        );
    }
}

/// A minimal Helia node (identify, bitswap; no ping service) stays
/// connected to disco for minutes — js-libp2p closes connections whose
/// pings go unanswered, and disco answers them although its own pings are
/// refused — and serves a clone: it fetched an image from one disco, that
/// disco is gone, and another disco pulls the image by CID from Helia.
#[test]
fn light_helia_peer_stays_connected_and_serves_a_clone() {
    use crate::disco_cid::push;
    use crate::disco_support::*;
    use crate::net_site::{pull_by_cid, small_node_keys};
    use crate::support::clients::Clients;

    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 21);
    let a = Node::start(NodeOpts {
        embedded: small_node_keys("10m"),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[a.host()]);
    push(&clients, &img, &a.host(), "light/app", "v1");
    let (cid, info) = a.published(&img.root.digest);

    let mut helia = HeliaPeer::start(work.path());
    assert!(helia.connect(&a.peer_addr()));
    helia
        .pin(&cid)
        .unwrap_or_else(|e| panic!("Helia pin of {cid}: {e}"));
    for b in info["blobs"].as_array().unwrap() {
        let c = b["cid"].as_str().unwrap();
        helia
            .pin(c)
            .unwrap_or_else(|e| panic!("Helia pin of blob {c}: {e}"));
    }
    drop(a);

    let b = Node::start(NodeOpts {
        embedded: small_node_keys("10m"),
        ..NodeOpts::default()
    });
    let b_id = b.api.get("/disco/v1/node").json()["peerId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(helia.connect(&b.peer_addr()));
    // 150 s: ten of js-libp2p's ping rounds.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_secs(10));
        let peers = helia.peers();
        assert!(
            peers.contains(&b_id),
            "Helia dropped disco after {:.0} s (peers {peers:?})\n{}",
            start.elapsed().as_secs_f64(),
            b.log_tail()
        );
    }
    pull_by_cid(&b, &cid, &img, "clone from a light Helia peer");
    assert!(
        helia.peers().contains(&b_id),
        "still connected after the clone"
    );
    assert_eq!(b.metric("disco_ipfs_streams_dropped_total"), 0);
    assert_eq!(b.metric("disco_ipfs_bitswap_sends_failed_total"), 0);
}

/// Helia's delegated routing client queries disco's `/routing/v1`: the
/// providers of an image (disco itself, with its addresses) and the
/// addresses of disco's peer id.
#[test]
fn helia_routing_client_queries_disco() {
    use crate::disco_cid::push;
    use crate::disco_support::*;
    use crate::support::clients::Clients;
    use crate::support::helia_peer::routing_client;

    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 22);
    let a = Node::start(NodeOpts::default());
    let clients = Clients::new(&[a.host()]);
    push(&clients, &img, &a.host(), "helia/routing", "v1");
    let (cid, info) = a.published(&img.root.digest);
    let node = a.api.get("/disco/v1/node").json();
    let id = node["peerId"].as_str().unwrap();
    let url = a.reg.url();
    for c in [cid.as_str(), info["blobs"][1]["cid"].as_str().unwrap()] {
        let got = routing_client(&url, "providers", c);
        let me = got
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("disco not among the providers of {c}: {got:?}"));
        assert!(
            me["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x.as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/")),
            "{me}"
        );
        assert_eq!(me["protocols"][0], "transport-bitswap");
    }
    let got = routing_client(&url, "peers", id);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], id);
    // Unknown content: no providers, no error.
    let none = routing_client(
        &url,
        "providers",
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    );
    assert!(none.is_empty(), "{none:?}");
}
