//! Tests of the embedded node through the `Ipfs` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::TryStreamExt;

use super::{BlockExchange, EmbeddedConfig, EmbeddedIpfs};
use crate::ipfs::unixfs::{FileImporter, MemoryBlocks, NullSink};
use crate::ipfs::{EntryKind, Ipfs, IpfsError, Result, WriteOptions};
use crate::storage::ByteStream;

fn stream(data: Vec<u8>) -> ByteStream {
    // Uneven pieces, to exercise chunk boundaries.
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(100_003)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed as usize) % 251) as u8)
        .collect()
}

async fn canonical(data: &[u8]) -> Cid {
    let mut imp = FileImporter::new(Arc::new(NullSink), 2);
    imp.push(Bytes::copy_from_slice(data)).await.unwrap();
    imp.finish().await.unwrap().cid
}

async fn read_all(node: &EmbeddedIpfs, path: &str) -> Vec<u8> {
    let s = node.files_read(path, 0, None).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::at(dir);
    c.gc.enabled = false;
    c.fetch_timeout = Duration::from_secs(2);
    c
}

const CREATE: WriteOptions = WriteOptions {
    create: true,
    truncate: true,
    parents: true,
    offset: 0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfs_operations_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    node.files_mkdir("/a/b", true).await.unwrap();
    assert!(matches!(
        node.files_mkdir("/a/b", false).await,
        Err(IpfsError::AlreadyExists(_))
    ));
    assert!(
        node.files_mkdir("/x/y", false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    node.files_write(
        "/a/b/hello",
        stream(b"hello world\n".to_vec()),
        CREATE.clone(),
    )
    .await
    .unwrap();
    let st = node.files_stat("/a/b/hello").await.unwrap();
    assert_eq!(
        st.cid.to_string(),
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    );
    assert_eq!((st.size, st.kind), (12, EntryKind::File));
    assert_eq!(read_all(&node, "/a/b/hello").await, b"hello world\n");
    let ranged: Vec<Bytes> = node
        .files_read("/a/b/hello", 6, Some(5))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ranged.concat(), b"world");
    // Not found, not a file, not a directory.
    assert!(node.files_stat("/nope").await.unwrap_err().is_not_found());
    assert!(matches!(
        node.files_read("/a", 0, None).await,
        Err(IpfsError::NotAFile(_))
    ));
    assert!(matches!(
        node.files_write("/a/b/hello/x", stream(vec![1]), CREATE.clone())
            .await,
        Err(IpfsError::NotADirectory(_))
    ));
    let no_create = WriteOptions::default();
    assert!(
        node.files_write("/a/missing", stream(vec![1]), no_create)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // The `a` / `b/c` vector: same tree, same CID.
    node.files_mkdir("/v/b", true).await.unwrap();
    node.files_write("/v/a", stream(b"a".to_vec()), CREATE.clone())
        .await
        .unwrap();
    node.files_cp("/a/b/hello", "/v/b/c", false).await.unwrap();
    assert_eq!(
        node.files_flush("/v").await.unwrap().to_string(),
        "bafybeifgmxudjt2wvvvj257xc7aq5wymhawh67spx7qp2rogfwvrhgzgn4"
    );
    assert!(matches!(
        node.files_cp("/v/a", "/v/b/c", false).await,
        Err(IpfsError::AlreadyExists(_))
    ));
    let ls = node.files_ls("/v").await.unwrap();
    let names: Vec<(&str, EntryKind, u64)> = ls
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.size))
        .collect();
    assert_eq!(
        names,
        vec![("a", EntryKind::File, 1), ("b", EntryKind::Directory, 0)]
    );
    // mv into a directory, mv to a new name, rm.
    node.files_mv("/v/a", "/a").await.unwrap();
    assert_eq!(read_all(&node, "/a/a").await, b"a");
    node.files_mv("/a/a", "/a/renamed").await.unwrap();
    assert!(node.files_stat("/a/a").await.unwrap_err().is_not_found());
    assert!(matches!(
        node.files_mv("/a", "/a/b/inside").await,
        Err(IpfsError::Invalid(_))
    ));
    assert!(matches!(
        node.files_rm("/v", false).await,
        Err(IpfsError::Invalid(_))
    ));
    node.files_rm("/v", true).await.unwrap();
    assert!(node.files_rm("/v", true).await.unwrap_err().is_not_found());
    let root = node.files_flush("/").await.unwrap();
    node.shutdown().await.unwrap();
    let peer = node.peer_id();
    drop(node);
    // Restart: same tree, same identity.
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    assert_eq!(node.peer_id(), peer);
    assert_eq!(node.files_stat("/").await.unwrap().cid, root);
    assert_eq!(read_all(&node, "/a/b/hello").await, b"hello world\n");
    assert_eq!(read_all(&node, "/a/renamed").await, b"a");
    // A second process (here: a second open) cannot share the directory.
    assert!(matches!(
        EmbeddedIpfs::open(config(dir.path())).await,
        Err(IpfsError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_canonical_whatever_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    let mut content = pattern(700_000, 1);
    node.files_write("/f", stream(content.clone()), CREATE.clone())
        .await
        .unwrap();
    assert_eq!(
        node.files_stat("/f").await.unwrap().cid,
        canonical(&content).await
    );
    // Overwrite in the middle (offset write, no truncate).
    let patch = pattern(300_000, 9);
    let opts = WriteOptions {
        offset: 200_000,
        ..WriteOptions::default()
    };
    node.files_write("/f", stream(patch.clone()), opts)
        .await
        .unwrap();
    content[200_000..500_000].copy_from_slice(&patch);
    assert_eq!(read_all(&node, "/f").await, content);
    assert_eq!(
        node.files_stat("/f").await.unwrap().cid,
        canonical(&content).await
    );
    // Append at the end (whole leaves of the prefix are reused).
    let tail = pattern(400_000, 3);
    let opts = WriteOptions {
        offset: content.len() as u64,
        ..WriteOptions::default()
    };
    node.files_write("/f", stream(tail.clone()), opts)
        .await
        .unwrap();
    content.extend_from_slice(&tail);
    assert_eq!(read_all(&node, "/f").await, content);
    assert_eq!(
        node.files_stat("/f").await.unwrap().cid,
        canonical(&content).await
    );
    // Past the end is refused; truncate replaces.
    let opts = WriteOptions {
        offset: content.len() as u64 + 1,
        ..WriteOptions::default()
    };
    assert!(matches!(
        node.files_write("/f", stream(vec![1]), opts).await,
        Err(IpfsError::Invalid(_))
    ));
    node.files_write("/f", stream(b"short".to_vec()), CREATE.clone())
        .await
        .unwrap();
    assert_eq!(node.files_stat("/f").await.unwrap().size, 5);
    // add gives the same CID as files_write.
    let cid = node.add(stream(content.clone()), false).await.unwrap();
    assert_eq!(cid, canonical(&content).await);
    let got: Vec<Bytes> = node
        .cat(&cid, 262_140, Some(10))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), &content[262_140..262_150]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hamt_switch_at_threshold_in_mfs() {
    let dir = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    node.files_mkdir("/d", false).await.unwrap();
    for i in 0..2622usize {
        let name = format!("/d/{i:064x}");
        node.files_write(&name, stream(i.to_string().into_bytes()), CREATE.clone())
            .await
            .unwrap();
        if i == 2620 {
            assert_eq!(
                node.files_flush("/d").await.unwrap().to_string(),
                "bafybeigkvboqgqrakzacizy3xaoeev536fp4hndqp67jlkvjnpesbynhpq"
            );
        }
    }
    assert_eq!(
        node.files_flush("/d").await.unwrap().to_string(),
        "bafybeicoh2tyil3vdx6zh4a7bxq55z5wjsvim4yrzv3232r4t3xgdxjaoy"
    );
    let probe = format!("/d/{:064x}", 1234);
    assert_eq!(read_all(&node, &probe).await, b"1234");
    // Back to flat when the estimate drops to the threshold, after a
    // restart (the HAMT is then loaded lazily from blocks).
    node.shutdown().await.unwrap();
    drop(node);
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    node.files_rm(&format!("/d/{:064x}", 2621), false)
        .await
        .unwrap();
    assert_eq!(
        node.files_flush("/d").await.unwrap().to_string(),
        "bafybeigkvboqgqrakzacizy3xaoeev536fp4hndqp67jlkvjnpesbynhpq"
    );
    assert_eq!(node.files_ls("/d").await.unwrap().len(), 2621);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_unreachable_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    let kept = pattern(600_000, 1);
    let pinned = pattern(300_000, 2);
    let garbage = pattern(500_000, 3);
    node.files_write("/keep/file", stream(kept.clone()), CREATE.clone())
        .await
        .unwrap();
    let pin = node.add(stream(pinned.clone()), true).await.unwrap();
    let junk = node.add(stream(garbage.clone()), false).await.unwrap();
    node.files_write("/gone", stream(pattern(10, 4)), CREATE.clone())
        .await
        .unwrap();
    node.files_rm("/gone", false).await.unwrap();
    let stats = node.gc().await.unwrap();
    // 2 leaves + 1 node for the 500 000-byte file, and the 10-byte file.
    assert_eq!(stats.removed, 3 + 1, "{stats:?}");
    assert_eq!(
        stats.freed_bytes,
        500_000 + 10 + (stats.freed_bytes - 500_010)
    );
    assert!(stats.freed_bytes > 500_010 && stats.freed_bytes < 500_200);
    assert!(node.block_stat(&junk).await.unwrap_err().is_not_found());
    assert_eq!(read_all(&node, "/keep/file").await, kept);
    let got: Vec<Bytes> = node
        .cat(&pin, 0, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), pinned);
    // A second collection finds nothing more; unpinning frees the pin.
    assert_eq!(node.gc().await.unwrap().removed, 0);
    node.pin_rm(&pin).await.unwrap();
    assert!(node.pin_rm(&pin).await.unwrap_err().is_not_found());
    assert_eq!(node.gc().await.unwrap().removed, 3);
    assert_eq!(read_all(&node, "/keep/file").await, kept);
}

/// A unit-test exchange serving blocks from memory (or never answering).
struct MemExchange {
    blocks: Arc<MemoryBlocks>,
    hang: bool,
}

#[async_trait]
impl BlockExchange for MemExchange {
    async fn fetch(&self, cid: &Cid, timeout: Duration) -> Result<Bytes> {
        if self.hang {
            tokio::time::sleep(timeout).await;
            return Err(IpfsError::Timeout(cid.to_string()));
        }
        self.blocks
            .get(cid)
            .ok_or_else(|| IpfsError::NotFound(cid.to_string()))
    }
    async fn provide(&self, _cid: &Cid) -> Result<()> {
        Ok(())
    }
    async fn connect(&self, _addr: &str) -> Result<()> {
        Ok(())
    }
    async fn peers(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_from_ipfs_fetches_missing_dag() {
    let remote = Arc::new(MemoryBlocks::default());
    let content = pattern(2_000_000, 5);
    let mut imp = FileImporter::new(remote.clone(), 2);
    imp.push(Bytes::from(content.clone())).await.unwrap();
    let file = imp.finish().await.unwrap();
    let dir_entries = vec![crate::ipfs::unixfs::dir::DirLink {
        name: "blob".into(),
        cid: file.cid,
        tsize: file.cumulative_size,
    }];
    let (dir_cid, _) = crate::ipfs::unixfs::dir::build_directory(dir_entries, &*remote).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(tmp.path())).await.unwrap();
    // No network: missing content is NotFound.
    let from = format!("/ipfs/{dir_cid}/blob");
    assert!(
        node.files_cp(&from, "/x", false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // A peer that never answers: Timeout.
    node.set_exchange(Arc::new(MemExchange {
        blocks: remote.clone(),
        hang: true,
    }));
    assert!(matches!(
        node.files_cp(&from, "/x", false).await,
        Err(IpfsError::Timeout(_))
    ));
    node.set_exchange(Arc::new(MemExchange {
        blocks: remote.clone(),
        hang: false,
    }));
    node.files_cp(&from, "/c/blob", true).await.unwrap();
    let st = node.files_stat("/c/blob").await.unwrap();
    assert_eq!((st.cid, st.size), (file.cid, content.len() as u64));
    // Every block is now local: reads work without the network.
    let tmp_cid = node.files_flush("/").await.unwrap();
    node.set_exchange(Arc::new(MemExchange {
        blocks: Arc::new(MemoryBlocks::default()),
        hang: false,
    }));
    assert_eq!(read_all(&node, "/c/blob").await, content);
    assert_eq!(node.files_stat("/").await.unwrap().cid, tmp_cid);
    // A whole directory too.
    node.set_exchange(Arc::new(MemExchange {
        blocks: remote.clone(),
        hang: false,
    }));
    node.files_cp(&format!("/ipfs/{dir_cid}"), "/d", false)
        .await
        .unwrap();
    assert_eq!(node.files_stat("/d").await.unwrap().cid, dir_cid);
    assert_eq!(read_all(&node, "/d/blob").await, content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_corrupt_network_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = EmbeddedIpfs::open(config(dir.path())).await.unwrap();
    let cid = node
        .block_put(Bytes::from_static(b"abc"), crate::ipfs::RAW)
        .await
        .unwrap();
    assert_eq!(
        cid.to_string(),
        "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu"
    );
    assert_eq!(node.block_get(&cid, None).await.unwrap(), &b"abc"[..]);
    assert_eq!(node.block_stat(&cid).await.unwrap(), 3);
    assert!(matches!(
        node.block_put(Bytes::from_static(&[0xff]), crate::ipfs::DAG_PB)
            .await,
        Err(IpfsError::Invalid(_))
    ));
    // A peer sending wrong bytes: rejected, nothing stored.
    let lie = Arc::new(MemoryBlocks::default());
    let wanted = crate::ipfs::block::raw_cid(b"truth");
    lie.put_raw(wanted, Bytes::from_static(b"lies"));
    node.set_exchange(Arc::new(MemExchange {
        blocks: lie,
        hang: false,
    }));
    assert!(node.block_get(&wanted, None).await.is_err());
    assert!(!node.inner.store.has_sync(&wanted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_during_writes_keeps_everything_linked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(EmbeddedIpfs::open(config(dir.path())).await.unwrap());
    // Garbage for the collector to chew on: seeds the writer never uses, so
    // no garbage block is also a block of a written file (which would keep
    // it alive when the write comes first).
    for i in 0..20u8 {
        node.add(stream(pattern(300_000, 100 + i)), false)
            .await
            .unwrap();
    }
    let writer = {
        let node = node.clone();
        tokio::spawn(async move {
            for i in 0..40usize {
                let len = 1000 + i * 20_000;
                node.files_write(
                    &format!("/w/{i}"),
                    stream(pattern(len, i as u8)),
                    CREATE.clone(),
                )
                .await
                .unwrap();
            }
        })
    };
    let mut removed = 0;
    while !writer.is_finished() {
        removed += node.gc().await.unwrap().removed;
    }
    writer.await.unwrap();
    removed += node.gc().await.unwrap().removed;
    assert!(removed >= 20 * 3, "garbage was collected ({removed})");
    for i in 0..40usize {
        let len = 1000 + i * 20_000;
        assert_eq!(
            read_all(&node, &format!("/w/{i}")).await,
            pattern(len, i as u8),
            "file {i}"
        );
    }
}
