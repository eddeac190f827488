//! The Kubo router over two real js-ipfs daemons, under the `ipfs` driver:
//! content lands on the node its identity hashes to, shared directories
//! merge, copies and moves cross nodes through `/ipfs/<cid>`, and a missing
//! node affects only the content it holds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use disco::ipfs::Ipfs;
use disco::ipfs::kubo::route::node_for;
use disco::ipfs::kubo::{KuboConfig, Router};
use disco::storage::ipfs::{IpfsDriver, IpfsStorageConfig};
use disco::storage::{StorageDriver, StorageError};
use futures::TryStreamExt;

use crate::support::jsipfs::JsIpfs;

const V2: &str = "/docker/registry/v2";

/// An identity (made from `prefix`) that the router puts on node `want` of 2.
fn on_node(prefix: &str, want: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|s| node_for(s, 2) == want)
        .unwrap()
}

/// A hex "digest" on node `want`, with its two-character directory.
fn digest_on(want: usize) -> (String, String) {
    let d = (0u32..)
        .map(|i| format!("{i:08x}{}", "0".repeat(56)))
        .find(|s| node_for(s, 2) == want)
        .unwrap();
    (d[..2].to_string(), d)
}

fn blob_path(want: usize) -> String {
    let (pre, d) = digest_on(want);
    format!("{V2}/blobs/sha256/{pre}/{d}/data")
}

struct Setup {
    daemons: Vec<JsIpfs>,
    router: Arc<Router>,
    driver: IpfsDriver,
    _spool: tempfile::TempDir,
}

async fn setup() -> Setup {
    let daemons = tokio::task::spawn_blocking(|| {
        let a = std::thread::spawn(JsIpfs::start);
        let b = JsIpfs::start();
        vec![a.join().unwrap(), b]
    })
    .await
    .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let cfg = IpfsStorageConfig {
        rootdirectory: "/reg".into(),
        spooldirectory: Some(spool.path().to_path_buf()),
        router: Some(KuboConfig {
            networktimeout: Duration::from_secs(20),
            retrybackoff: Duration::from_millis(20),
            ..KuboConfig::with_nodes(daemons.iter().map(|d| d.api.clone()))
        }),
        ..Default::default()
    };
    let router = Arc::new(Router::new(cfg.router.as_ref().unwrap()).unwrap());
    let driver = IpfsDriver::new(router.clone(), &cfg).await.unwrap();
    Setup {
        daemons,
        router,
        driver,
        _spool: spool,
    }
}

impl Setup {
    /// Whether node `i` holds storage path `path` in its MFS.
    async fn on(&self, i: usize, path: &str) -> bool {
        match self.router.nodes()[i]
            .files_stat(&self.driver.mfs_path(path))
            .await
        {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("stat {path} on node {i}: {e}"),
        }
    }

    async fn read(&self, path: &str) -> Vec<u8> {
        let chunks: Vec<Bytes> = self
            .driver
            .reader(path, 0)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_placed_by_hash_and_moves_across_nodes() {
    let mut s = setup().await;
    let d = &s.driver.clone();
    let (repo0, repo1) = (on_node("lib/a", 0), on_node("lib/b", 1));
    // Repository content goes to the repository's node.
    for (repo, node) in [(&repo0, 0), (&repo1, 1)] {
        let link = format!("{V2}/repositories/{repo}/_layers/sha256/abc/link");
        d.put_content(&link, Bytes::from(repo.clone()))
            .await
            .unwrap();
        assert!(s.on(node, &link).await, "{link} not on node {node}");
        assert!(
            !s.on(1 - node, &link).await,
            "{link} also on node {}",
            1 - node
        );
        assert_eq!(d.get_content(&link).await.unwrap(), repo.as_bytes());
    }
    // The shared parents merge both nodes' entries.
    let mut repos = d.list(&format!("{V2}/repositories/lib")).await.unwrap();
    repos.sort();
    let mut want = vec![
        format!("{V2}/repositories/{repo0}"),
        format!("{V2}/repositories/{repo1}"),
    ];
    want.sort();
    assert_eq!(repos, want);

    // An upload on node 0 committed, then moved to a blob on node 1: the
    // DAG crosses nodes through /ipfs/<cid>, the source goes away.
    let upload = format!(
        "{V2}/repositories/{repo0}/_uploads/{}/data",
        on_node("up", 0)
    );
    let blob = blob_path(1);
    let data = disco::storage::testsuite::pattern(3 * 1024 * 1024 + 7, 5);
    let mut w = d.writer(&upload, false).await.unwrap();
    for c in data.chunks(500_000) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit().await.unwrap();
    assert!(s.on(0, &upload).await && !s.on(1, &upload).await);
    let cid = s.router.files_stat(&d.mfs_path(&upload)).await.unwrap().cid;
    d.rename(&upload, &blob).await.unwrap();
    assert!(s.on(1, &blob).await && !s.on(0, &blob).await);
    assert!(!s.on(0, &upload).await, "source left behind");
    assert!(d.stat(&upload).await.unwrap_err().is_not_found());
    let moved = s.router.nodes()[1]
        .files_stat(&d.mfs_path(&blob))
        .await
        .unwrap();
    assert_eq!(moved.cid, cid, "the move changed the CID");
    assert_eq!(s.read(&blob).await, data);
    // Node 1 has every block: it serves the blob with node 0 gone.
    s.daemons[0].kill();
    assert_eq!(s.read(&blob).await, data);

    // A copy between nodes (same node → other node) keeps both.
    let copy = blob_path(0);
    let err = s
        .router
        .files_cp(&d.mfs_path(&blob), &d.mfs_path(&copy), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, disco::ipfs::IpfsError::Unavailable(_)),
        "copy to a dead node: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_across_nodes_keep_both() {
    let s = setup().await;
    let d = &s.driver;
    let a = blob_path(0);
    let b = blob_path(1);
    d.put_content(&a, Bytes::from_static(b"copied across"))
        .await
        .unwrap();
    s.router
        .files_cp(&d.mfs_path(&a), &d.mfs_path(&b), true)
        .await
        .unwrap();
    assert!(s.on(0, &a).await && s.on(1, &b).await);
    assert_eq!(d.get_content(&b).await.unwrap(), &b"copied across"[..]);
    assert_eq!(d.get_content(&a).await.unwrap(), &b"copied across"[..]);
    // Walking the shared blobs tree sees both nodes' content.
    let mut files = Vec::new();
    d.walk(&format!("{V2}/blobs"), &mut |fi| {
        if !fi.is_dir {
            files.push(fi.path.clone());
        }
        disco::storage::WalkControl::Continue
    })
    .await
    .unwrap();
    files.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(files, want);
    // Deleting a shared parent removes it from every node.
    d.delete(&format!("{V2}/blobs")).await.unwrap();
    assert!(!s.on(0, &a).await && !s.on(1, &b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_node_affects_only_its_content() {
    let mut s = setup().await;
    let d = s.driver.clone();
    let (keep, lost) = (blob_path(0), blob_path(1));
    d.put_content(&keep, Bytes::from_static(b"on node 0"))
        .await
        .unwrap();
    d.put_content(&lost, Bytes::from_static(b"on node 1"))
        .await
        .unwrap();
    s.daemons[1].kill();

    // Node 0's content is unaffected.
    assert_eq!(d.get_content(&keep).await.unwrap(), &b"on node 0"[..]);
    let other = blob_path(0).replace("/data", "/other");
    d.put_content(&other, Bytes::from_static(b"x"))
        .await
        .unwrap();
    // Node 1's content is unavailable, not missing.
    for res in [
        d.get_content(&lost).await.map(|_| ()),
        d.stat(&lost).await.map(|_| ()),
        d.put_content(&lost, Bytes::from_static(b"y")).await,
        // A listing that needs both nodes fails rather than omit content.
        d.list(&format!("{V2}/blobs/sha256")).await.map(|_| ()),
    ] {
        assert!(
            matches!(res, Err(StorageError::Unavailable(_))),
            "expected Unavailable, got {res:?}"
        );
    }

    // Back up: everything is there again.
    let s = tokio::task::spawn_blocking(move || {
        s.daemons[1].start_again();
        s
    })
    .await
    .unwrap();
    assert_eq!(
        s.driver.get_content(&lost).await.unwrap(),
        &b"on node 1"[..]
    );
    assert!(s.driver.list(&format!("{V2}/blobs/sha256")).await.is_ok());
}
