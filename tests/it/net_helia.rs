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
