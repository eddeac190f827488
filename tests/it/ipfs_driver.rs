//! The `ipfs` storage driver over a real js-ipfs daemon (Kubo RPC) and over
//! the embedded node: the shared driver suite on both, canonical CIDs of
//! committed files, and resumable uploads across a driver restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use disco::ipfs::kubo::{KuboClient, KuboConfig};
use disco::ipfs::{Cid, Ipfs, MfsEntry, MfsStat, NodeIdentity, Result as IpfsResult, WriteOptions};
use disco::storage::ipfs::{IpfsDriver, IpfsStorageConfig};
use disco::storage::testsuite::Fixture;
use disco::storage::{ByteStream, StorageDriver};
use futures::TryStreamExt;
use tempfile::TempDir;

use crate::support::jsipfs::{self, JsIpfs};

/// Driver settings for a fresh root directory on the daemon at `api`.
pub fn config(api: &str, spool: &TempDir) -> IpfsStorageConfig {
    IpfsStorageConfig {
        rootdirectory: format!("/disco-{}", uuid::Uuid::new_v4().simple()),
        spooldirectory: Some(spool.path().to_path_buf()),
        router: Some(KuboConfig {
            networktimeout: Duration::from_secs(10),
            ..KuboConfig::with_nodes([api])
        }),
        ..Default::default()
    }
}

async fn shared_daemon() -> Arc<JsIpfs> {
    tokio::task::spawn_blocking(jsipfs::shared).await.unwrap()
}

mod suite {
    use super::*;

    async fn fixture() -> Fixture {
        let daemon = shared_daemon().await;
        let spool = tempfile::tempdir().unwrap();
        let driver = IpfsDriver::from_config(&config(&daemon.api, &spool))
            .await
            .unwrap();
        Fixture::new(driver, (daemon, spool))
    }

    disco::storage_driver_suite!(fixture());
}

/// The same suite over the embedded node, opened as the server opens it
/// (`IpfsBackend::open`) in a temp data directory, offline (`listen: []`).
mod embedded_suite {
    use disco::storage::ipfs::backend::IpfsBackend;

    use super::*;

    /// An offline embedded node (no listen addresses) under `dir`.
    fn offline_config(dir: &std::path::Path) -> IpfsStorageConfig {
        let mut cfg = IpfsStorageConfig {
            rootdirectory: "/registry".into(),
            spooldirectory: Some(dir.join("spool")),
            ..Default::default()
        };
        cfg.embedded.store.path = dir.join("ipfs");
        cfg.embedded.net.listen.clear();
        cfg
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cfg = offline_config(dir.path());
        let backend = IpfsBackend::open(&cfg, dir.path()).await.unwrap();
        assert!(backend.embedded.is_some() && backend.network.is_none());
        let driver = IpfsDriver::new(backend.ipfs.clone(), &cfg).await.unwrap();
        // Dropped in order: the driver, the node (final flush), the dir.
        Fixture::new(driver, (backend, dir))
    }

    disco::storage_driver_suite!(fixture());

    /// Uploads are imported while they are written (across a close and an
    /// append) and, after a restart of the driver, from the spool: either
    /// way the committed file has the canonical CID, and a garbage
    /// collection right after keeps it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_commit_canonical_cids_with_and_without_the_import_alongside() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = offline_config(dir.path());
        let backend = IpfsBackend::open(&cfg, dir.path()).await.unwrap();
        let mib = vec![0u8; 1024 * 1024];
        let write = |d: &IpfsDriver, path: &'static str, append: bool, mibs: usize| {
            let (d, mib) = (d.clone(), mib.clone());
            async move {
                let mut w = d.writer(path, append).await.unwrap();
                for _ in 0..mibs {
                    w.write(Bytes::from(mib.clone())).await.unwrap();
                }
                w
            }
        };
        let cid_of = |d: &IpfsDriver, path: &'static str| {
            let d = d.clone();
            async move {
                d.ipfs()
                    .files_stat(&d.mfs_path(path))
                    .await
                    .unwrap()
                    .cid
                    .to_string()
            }
        };

        let d = IpfsDriver::new(backend.ipfs.clone(), &cfg).await.unwrap();
        // Imported alongside: 2 MiB, close, 3 MiB more, commit.
        write(&d, "/a/data", false, 2).await.close().await.unwrap();
        write(&d, "/a/data", true, 3).await.commit().await.unwrap();
        assert_eq!(cid_of(&d, "/a/data").await, ZEROS_5MIB);
        assert_eq!(d.preimported(), 1);

        // A restart between the two requests: the spool is imported.
        write(&d, "/b/data", false, 2).await.close().await.unwrap();
        let d2 = IpfsDriver::new(backend.ipfs.clone(), &cfg).await.unwrap();
        write(&d2, "/b/data", true, 3).await.commit().await.unwrap();
        assert_eq!(cid_of(&d2, "/b/data").await, ZEROS_5MIB);
        assert_eq!(d2.preimported(), 0);

        // A cancelled upload leaves nothing; committed files survive GC.
        let w = write(&d2, "/c/data", false, 1).await;
        w.cancel().await.unwrap();
        assert!(d2.stat("/c/data").await.unwrap_err().is_not_found());
        backend.embedded.as_ref().unwrap().gc().await.unwrap();
        for p in ["/a/data", "/b/data"] {
            let s = d2.reader(p, 0).await.unwrap();
            let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
            let all = chunks.concat();
            assert_eq!(all.len(), 5 * 1024 * 1024);
            assert!(all.iter().all(|b| *b == 0));
        }
        drop((d, d2));
        drop(backend);
    }
}

/// `ipfs add --cid-version=1` CIDs from ipfs-vectors.md.
const EMPTY: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const HELLO: &str = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4";
const ZEROS_262145: &str = "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki";
const ZEROS_5MIB: &str = "bafybeid7mu43g4fehkxhdkl4x3lu4pybxuxpg57it6r6z7e36soj7h2yd4";

/// A real Kubo client that counts the imports it is asked for.
struct Counting {
    inner: KuboClient,
    imports: AtomicUsize,
}

#[async_trait]
impl Ipfs for Counting {
    fn name(&self) -> &'static str {
        "counting-kubo"
    }
    async fn files_mkdir(&self, path: &str, parents: bool) -> IpfsResult<()> {
        self.inner.files_mkdir(path, parents).await
    }
    async fn files_write(
        &self,
        path: &str,
        data: ByteStream,
        opts: WriteOptions,
    ) -> IpfsResult<()> {
        self.imports.fetch_add(1, Ordering::SeqCst);
        self.inner.files_write(path, data, opts).await
    }
    async fn files_read(
        &self,
        path: &str,
        offset: u64,
        count: Option<u64>,
    ) -> IpfsResult<ByteStream> {
        self.inner.files_read(path, offset, count).await
    }
    async fn files_stat(&self, path: &str) -> IpfsResult<MfsStat> {
        self.inner.files_stat(path).await
    }
    async fn files_ls(&self, path: &str) -> IpfsResult<Vec<MfsEntry>> {
        self.inner.files_ls(path).await
    }
    async fn files_cp(&self, from: &str, to: &str, parents: bool) -> IpfsResult<()> {
        self.inner.files_cp(from, to, parents).await
    }
    async fn files_mv(&self, from: &str, to: &str) -> IpfsResult<()> {
        self.inner.files_mv(from, to).await
    }
    async fn files_rm(&self, path: &str, recursive: bool) -> IpfsResult<()> {
        self.inner.files_rm(path, recursive).await
    }
    async fn files_flush(&self, path: &str) -> IpfsResult<Cid> {
        self.inner.files_flush(path).await
    }
    async fn add(&self, data: ByteStream, pin: bool) -> IpfsResult<Cid> {
        self.imports.fetch_add(1, Ordering::SeqCst);
        self.inner.add(data, pin).await
    }
    async fn cat(&self, cid: &Cid, offset: u64, length: Option<u64>) -> IpfsResult<ByteStream> {
        self.inner.cat(cid, offset, length).await
    }
    async fn block_get(&self, cid: &Cid, timeout: Option<Duration>) -> IpfsResult<Bytes> {
        self.inner.block_get(cid, timeout).await
    }
    async fn block_put(&self, data: Bytes, codec: u64) -> IpfsResult<Cid> {
        self.inner.block_put(data, codec).await
    }
    async fn block_stat(&self, cid: &Cid) -> IpfsResult<u64> {
        self.inner.block_stat(cid).await
    }
    async fn pin_add(&self, cid: &Cid, recursive: bool) -> IpfsResult<()> {
        self.inner.pin_add(cid, recursive).await
    }
    async fn pin_rm(&self, cid: &Cid) -> IpfsResult<()> {
        self.inner.pin_rm(cid).await
    }
    async fn swarm_connect(&self, addr: &str) -> IpfsResult<()> {
        self.inner.swarm_connect(addr).await
    }
    async fn id(&self) -> IpfsResult<NodeIdentity> {
        self.inner.id().await
    }
}

async fn cid_at(d: &IpfsDriver, path: &str) -> String {
    d.ipfs()
        .files_stat(&d.mfs_path(path))
        .await
        .unwrap()
        .cid
        .to_string()
}

async fn write_zeros(d: &IpfsDriver, path: &str, len: usize, chunk: usize) {
    let mut w = d.writer(path, false).await.unwrap();
    let mut left = len;
    while left > 0 {
        let n = chunk.min(left);
        w.write(Bytes::from(vec![0u8; n])).await.unwrap();
        left -= n;
    }
    w.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_files_have_canonical_cids() {
    let daemon = shared_daemon().await;
    let spool = tempfile::tempdir().unwrap();
    let d = IpfsDriver::from_config(&config(&daemon.api, &spool))
        .await
        .unwrap();
    d.put_content("/x/hello", Bytes::from_static(b"hello world\n"))
        .await
        .unwrap();
    assert_eq!(cid_at(&d, "/x/hello").await, HELLO);
    d.writer("/x/empty", false)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    assert_eq!(cid_at(&d, "/x/empty").await, EMPTY);
    // Write boundaries do not matter: odd chunks, and a close/append in
    // the middle, give the same DAG as `ipfs add`.
    write_zeros(&d, "/x/z1", 262_145, 99_999).await;
    assert_eq!(cid_at(&d, "/x/z1").await, ZEROS_262145);
    let mut w = d.writer("/x/z2", false).await.unwrap();
    w.write(Bytes::from(vec![0u8; 7])).await.unwrap();
    w.close().await.unwrap();
    let mut w = d.writer("/x/z2", true).await.unwrap();
    w.write(Bytes::from(vec![0u8; 262_138])).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(cid_at(&d, "/x/z2").await, ZEROS_262145);
    write_zeros(&d, "/x/z5", 5 * 1024 * 1024, 1_000_003).await;
    assert_eq!(cid_at(&d, "/x/z5").await, ZEROS_5MIB);
    // Appending to a committed file re-imports the whole content
    // canonically.
    let w = d.writer("/x/z1", true).await.unwrap();
    assert_eq!(w.size(), 262_145);
    w.commit().await.unwrap();
    assert_eq!(cid_at(&d, "/x/z1").await, ZEROS_262145);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_into_blobs_does_not_reimport() {
    let daemon = shared_daemon().await;
    let spool = tempfile::tempdir().unwrap();
    let cfg = config(&daemon.api, &spool);
    let counting = Arc::new(Counting {
        inner: KuboClient::new(&daemon.api, cfg.router.as_ref().unwrap()).unwrap(),
        imports: AtomicUsize::new(0),
    });
    let d = IpfsDriver::new(counting.clone(), &cfg).await.unwrap();
    let upload = "/docker/registry/v2/repositories/a/_uploads/u1/data";
    let blob = "/docker/registry/v2/blobs/sha256/ab/abcdef/data";
    write_zeros(&d, upload, 5 * 1024 * 1024, 1 << 20).await;
    assert_eq!(counting.imports.load(Ordering::SeqCst), 1);
    d.rename(upload, blob).await.unwrap();
    assert_eq!(
        counting.imports.load(Ordering::SeqCst),
        1,
        "rename imported"
    );
    assert_eq!(cid_at(&d, blob).await, ZEROS_5MIB);
    assert!(d.stat(upload).await.unwrap_err().is_not_found());
    assert_eq!(d.stat(blob).await.unwrap().size, 5 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_upload_survives_a_driver_restart() {
    let daemon = shared_daemon().await;
    let spool = tempfile::tempdir().unwrap();
    let cfg = config(&daemon.api, &spool);
    let data = disco::storage::testsuite::pattern(700_000, 9);
    let path = "/docker/registry/v2/repositories/r/_uploads/u2/data";
    {
        let d = IpfsDriver::from_config(&cfg).await.unwrap();
        let mut w = d.writer(path, false).await.unwrap();
        w.write(Bytes::copy_from_slice(&data[..300_001]))
            .await
            .unwrap();
        w.close().await.unwrap();
        // Not in IPFS yet: staged locally.
        assert!(
            d.ipfs()
                .files_stat(&d.mfs_path(path))
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
    let d = IpfsDriver::from_config(&cfg).await.unwrap();
    assert_eq!(d.stat(path).await.unwrap().size, 300_001);
    assert_eq!(
        d.list("/docker/registry/v2/repositories/r/_uploads/u2")
            .await
            .unwrap(),
        vec![path.to_string()]
    );
    let mut w = d.writer(path, true).await.unwrap();
    assert_eq!(w.size(), 300_001);
    w.write(Bytes::copy_from_slice(&data[300_001..]))
        .await
        .unwrap();
    w.commit().await.unwrap();
    let chunks: Vec<Bytes> = d
        .reader(path, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.concat(), data);
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "spool not emptied after commit"
    );
}
