//! Importing a file into IPFS while it is written (embedded backend only).
//!
//! Without it, a writer stages bytes in the spool and [`commit`] imports
//! the whole file afterwards, so a large upload is written and hashed twice
//! in a row. A [`PreImport`] feeds every written chunk to the backend's
//! canonical `add` as it arrives (through a bounded channel); at commit the
//! file is only linked into MFS from `/ipfs/<cid>`. The spool stays the
//! source of truth: a pre-import that is missing (after a restart), out of
//! step with the spool, or failed is dropped and the spool is imported as
//! before. The added DAG is pinned until it is linked, so a garbage
//! collection in between cannot free it.
//!
//! [`commit`]: crate::storage::FileWriter::commit

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ipfs::{Ipfs, Result as IpfsResult};

/// Chunks in flight between a writer and its import.
const CHANNEL: usize = 8;
/// Pre-imports kept between the requests of uploads at once; more uploads
/// fall back to importing the spool at commit.
const MAX_PARKED: usize = 256;

/// An import running alongside a writer.
/// Dropped without [`PreImport::finish`], the import is aborted before its
/// input ends, so it never completes (nor pins anything).
pub(crate) struct PreImport {
    tx: mpsc::Sender<io::Result<Bytes>>,
    task: Option<JoinHandle<IpfsResult<Cid>>>,
    /// Bytes fed so far.
    pub size: u64,
}

impl PreImport {
    /// Starts `add` (pinned) of what will be fed.
    pub fn start(ipfs: Arc<dyn Ipfs>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let input = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let task = tokio::spawn(async move { ipfs.add(input.boxed(), true).await });
        PreImport {
            tx,
            task: Some(task),
            size: 0,
        }
    }

    /// Feeds a chunk; false if the import has stopped (the caller drops it).
    pub async fn feed(&mut self, data: Bytes) -> bool {
        let n = data.len() as u64;
        if self.tx.send(Ok(data)).await.is_err() {
            return false;
        }
        self.size += n;
        true
    }

    /// Ends the input and waits for the imported (pinned) root.
    pub async fn finish(mut self) -> IpfsResult<Cid> {
        let task = self.task.take().expect("running");
        // The task must see the input end: abort-on-drop is off now.
        drop(self);
        task.await
            .map_err(|e| crate::ipfs::IpfsError::Other(format!("import task: {e}")))?
    }

    /// Stops the import; nothing is pinned (the input never ended).
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for PreImport {
    fn drop(&mut self) {
        // Aborted while `tx` is still alive: the input never ends, so the
        // import cannot complete and pin.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Pre-imports of files whose writer was closed for a later append, by
/// storage path.
#[derive(Default)]
pub(crate) struct Parked {
    map: Mutex<HashMap<String, PreImport>>,
}

impl Parked {
    /// Keeps `p` for the next writer of `path` (aborts it when full).
    pub fn park(&self, path: &str, p: PreImport) {
        let mut map = self.map.lock();
        if map.len() >= MAX_PARKED {
            p.abort();
            return;
        }
        if let Some(old) = map.insert(path.to_string(), p) {
            old.abort();
        }
    }

    /// Takes the pre-import of `path` if it fed exactly `size` bytes.
    pub fn take(&self, path: &str, size: u64) -> Option<PreImport> {
        let p = self.map.lock().remove(path)?;
        if p.size == size {
            Some(p)
        } else {
            p.abort();
            None
        }
    }

    /// Aborts the pre-imports of `path` and everything under it.
    pub fn drop_under(&self, path: &str) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut map = self.map.lock();
        let gone: Vec<String> = map
            .keys()
            .filter(|k| k.as_str() == path || k.starts_with(&prefix) || path == "/")
            .cloned()
            .collect();
        for k in gone {
            if let Some(p) = map.remove(&k) {
                p.abort();
            }
        }
    }
}
