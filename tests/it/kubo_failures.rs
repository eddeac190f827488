//! Failure cases of the Kubo backend against a real js-ipfs daemon: the
//! daemon killed in the middle of a write, and a daemon that stops
//! answering (SIGSTOP).

use std::time::Duration;

use bytes::Bytes;
use disco::ipfs::kubo::{KuboClient, KuboConfig};
use disco::ipfs::{Ipfs, IpfsError, WriteOptions};
use disco::storage::ipfs::{IpfsDriver, IpfsStorageConfig};
use disco::storage::{StorageDriver, StorageError};
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::oneshot;

use crate::support::jsipfs::JsIpfs;

const ZEROS_5MIB: &str = "bafybeid7mu43g4fehkxhdkl4x3lu4pybxuxpg57it6r6z7e36soj7h2yd4";

async fn start() -> JsIpfs {
    tokio::task::spawn_blocking(JsIpfs::start).await.unwrap()
}

async fn kill(mut d: JsIpfs) -> JsIpfs {
    tokio::task::spawn_blocking(move || {
        d.kill();
        d
    })
    .await
    .unwrap()
}

async fn start_again(mut d: JsIpfs) -> JsIpfs {
    tokio::task::spawn_blocking(move || {
        d.start_again();
        d
    })
    .await
    .unwrap()
}

fn cfg(api: &str) -> KuboConfig {
    KuboConfig {
        networktimeout: Duration::from_secs(5),
        retrybackoff: Duration::from_millis(20),
        ..KuboConfig::with_nodes([api])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_mid_write_then_restarted() {
    let daemon = start().await;
    let c = KuboClient::new(&daemon.api, &cfg(&daemon.api)).unwrap();
    let path = "/killed/data";

    // A write whose body pauses after 1 MiB until the daemon is dead.
    let (pulled_tx, pulled_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    let first = chunk.clone();
    let body = stream::once(async move { Ok(first) })
        .chain(stream::once(async move {
            let _ = pulled_tx.send(());
            let _ = go_rx.await;
            Ok(Bytes::from(vec![0u8; 1 << 20]))
        }))
        .chain(stream::iter((0..3).map(move |_| Ok(chunk.clone()))))
        .boxed();
    let opts = WriteOptions {
        create: true,
        truncate: true,
        parents: true,
        offset: 0,
    };
    let writer = {
        let c = c.clone();
        let opts = opts.clone();
        tokio::spawn(async move { c.files_write(path, body, opts).await })
    };
    pulled_rx.await.unwrap();
    let daemon = kill(daemon).await;
    let _ = go_tx.send(());
    let err = writer.await.unwrap().unwrap_err();
    assert!(matches!(err, IpfsError::Unavailable(_)), "{err:?}");
    // While down, calls fail fast and typed.
    assert!(matches!(
        c.files_stat(path).await,
        Err(IpfsError::Unavailable(_))
    ));

    // After a restart nothing half-written is visible, and the write works.
    let daemon = start_again(daemon).await;
    assert!(c.files_stat(path).await.unwrap_err().is_not_found());
    let zeros = Bytes::from(vec![0u8; 5 << 20]);
    c.files_write(path, stream::once(async move { Ok(zeros) }).boxed(), opts)
        .await
        .unwrap();
    assert_eq!(
        c.files_stat(path).await.unwrap().cid.to_string(),
        ZEROS_5MIB
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_survives_a_daemon_crash() {
    let daemon = start().await;
    let spool = tempfile::tempdir().unwrap();
    let cfg = IpfsStorageConfig {
        rootdirectory: "/reg".into(),
        spooldirectory: Some(spool.path().to_path_buf()),
        router: Some(cfg(&daemon.api)),
        ..Default::default()
    };
    let d = IpfsDriver::from_config(&cfg).await.unwrap();
    let path = "/docker/registry/v2/repositories/r/_uploads/u/data";
    let data = disco::storage::testsuite::pattern(3 * 1024 * 1024, 77);
    let mut w = d.writer(path, false).await.unwrap();
    w.write(Bytes::copy_from_slice(&data[..2_000_000]))
        .await
        .unwrap();
    let daemon = kill(daemon).await;
    // The writer keeps taking bytes (they are spooled locally) ...
    w.write(Bytes::copy_from_slice(&data[2_000_000..]))
        .await
        .unwrap();
    // ... but the commit cannot import them: a clean, typed error.
    let err = w.commit().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let err = d
        .put_content("/docker/x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");

    // After the restart the upload is still there, complete, and commits.
    let daemon = start_again(daemon).await;
    assert_eq!(d.stat(path).await.unwrap().size, data.len() as u64);
    let w = d.writer(path, true).await.unwrap();
    assert_eq!(w.size(), data.len() as u64);
    w.commit().await.unwrap();
    let got: Vec<Bytes> = d
        .reader(path, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), data);
    assert!(
        d.ipfs().files_stat(&d.mfs_path(path)).await.is_ok(),
        "committed into MFS"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_daemon_times_out() {
    let daemon = start().await;
    let pid = daemon.pid().unwrap() as i32;
    let kcfg = KuboConfig {
        requesttimeout: Duration::from_secs(1),
        retries: 0,
        ..cfg(&daemon.api)
    };
    let c = KuboClient::new(&daemon.api, &kcfg).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let d = IpfsDriver::new(
        std::sync::Arc::new(c.clone()),
        &IpfsStorageConfig {
            rootdirectory: "/slow".into(),
            spooldirectory: Some(spool.path().to_path_buf()),
            router: Some(kcfg.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    d.put_content("/f", Bytes::from_static(b"before"))
        .await
        .unwrap();

    // Frozen: the TCP connection is accepted by the kernel, no answer comes.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let res = (c.id().await, d.stat("/f").await, d.get_content("/f").await);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(matches!(res.0, Err(IpfsError::Timeout(_))), "{:?}", res.0);
    assert!(
        matches!(res.1, Err(StorageError::Timeout(_))),
        "{:?}",
        res.1
    );
    assert!(
        matches!(res.2, Err(StorageError::Timeout(_))),
        "{:?}",
        res.2
    );
    // Thawed, it answers again.
    assert_eq!(d.get_content("/f").await.unwrap(), &b"before"[..]);
    drop(daemon);
}
