//! The `ipfs` storage driver over a real js-ipfs daemon (Kubo RPC): the
//! shared driver suite, canonical CIDs of committed files, and resumable
//! uploads across a driver restart.

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
        router: KuboConfig {
            networktimeout: Duration::from_secs(10),
            ..KuboConfig::with_nodes([api])
        },
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
