//! Blobs of mirrored repositories: fetched upstream once per digest,
//! streamed to the first client while stored, verified before they are
//! kept. The last chunk reaches the client only after the digest checks
//! out; on a mismatch the stored copy is removed and the client's body
//! fails (its connection is cut), so nothing unverified is ever complete.

use std::io;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::error::MirrorError;
use super::{Mirror, Target};
use crate::registry::digest::Digester;
use crate::registry::{Digest, RegistryError, RepoName, paths};
use crate::storage::ByteStream;

/// Chunks buffered between the fetch and a slow client.
const CLIENT_BUFFER: usize = 16;

/// What a blob request gets.
pub enum BlobFetch {
    /// The blob is stored and linked now: serve it normally.
    Stored,
    /// A new fetch: its size, if announced, and the client's stream.
    Streaming(Option<u64>, ByteStream),
}

impl Mirror {
    /// Makes blob `digest` of mirrored `local` available: waits for a
    /// fetch in progress, or starts one (streaming to the caller if
    /// `stream`). `Ok(None)` if the upstream does not have it.
    pub async fn fetch_blob(
        &self,
        t: &Target,
        local: &RepoName,
        digest: &Digest,
        stream: bool,
    ) -> Result<Option<BlobFetch>, MirrorError> {
        let registry = &self.inner.registry;
        loop {
            if registry.is_linked(local, digest).await? {
                return Ok(Some(BlobFetch::Stored));
            }
            let running = self.inner.fetches.lock().get(digest).cloned();
            let Some(mut rx) = running else { break };
            // Another request fetches it: wait for its outcome.
            let _ = rx.wait_for(|v| v.is_some()).await;
            if registry.stat_global_blob(digest).await?.is_some() {
                break;
            }
            if !matches!(*rx.borrow(), Some(true)) {
                return Err(MirrorError::Unavailable {
                    upstream: self.upstream(t).name.clone(),
                    why: format!("fetching blob {digest} failed"),
                });
            }
        }
        if registry.stat_global_blob(digest).await?.is_some() {
            // Stored for another name: link it if this repository has it
            // upstream (names are access-controlled; digests are not).
            return match self
                .upstream(t)
                .head_blob(&t.remote, &digest.to_string())
                .await?
            {
                Some(_) => {
                    registry.link_blob(local, digest).await?;
                    Ok(Some(BlobFetch::Stored))
                }
                None => Ok(None),
            };
        }
        let (tx, rx) = watch::channel(None);
        let raced = {
            let mut fetches = self.inner.fetches.lock();
            let raced = fetches.contains_key(digest);
            if !raced {
                fetches.insert(digest.clone(), rx);
            }
            raced
        };
        if raced {
            // Another request started the same fetch just now.
            return Box::pin(self.fetch_blob(t, local, digest, stream)).await;
        }
        let started = self.start_fetch(t, local, digest, tx, stream).await;
        if !matches!(started, Ok(Some(_))) {
            self.inner.fetches.lock().remove(digest);
        }
        started
    }

    async fn start_fetch(
        &self,
        t: &Target,
        local: &RepoName,
        digest: &Digest,
        done: watch::Sender<Option<bool>>,
        stream: bool,
    ) -> Result<Option<BlobFetch>, MirrorError> {
        let up = self.upstream(t);
        let Some((len, body)) = up.get_blob(&t.remote, &digest.to_string()).await? else {
            return Ok(None);
        };
        let (client, rx) = if stream {
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CLIENT_BUFFER);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let this = self.clone();
        let (t, local, digest) = (t.clone(), local.clone(), digest.clone());
        let task = tokio::spawn(async move {
            let r = this.store(&t, &local, &digest, len, body, client).await;
            if let Err(e) = &r {
                tracing::warn!(upstream = %this.upstream(&t).name, %digest, error = %e, "mirror blob fetch failed");
            }
            this.inner.fetches.lock().remove(&digest);
            let _ = done.send(Some(r.is_ok()));
            r
        });
        match rx {
            Some(rx) => {
                let s: ByteStream = Box::pin(tokio_stream_from(rx));
                Ok(Some(BlobFetch::Streaming(len, s)))
            }
            None => match task.await {
                Ok(Ok(())) => Ok(Some(BlobFetch::Stored)),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(MirrorError::Registry(RegistryError::internal(format!(
                    "blob fetch task failed: {e}"
                )))),
            },
        }
    }

    /// Writes `body` to a staging file while hashing it and passing it to
    /// `client`; commits it as blob `digest` linked into `local` if it
    /// matches.
    async fn store(
        &self,
        t: &Target,
        local: &RepoName,
        digest: &Digest,
        len: Option<u64>,
        mut body: ByteStream,
        mut client: Option<mpsc::Sender<io::Result<Bytes>>>,
    ) -> Result<(), MirrorError> {
        let registry = &self.inner.registry;
        let driver = registry.driver();
        let id = uuid::Uuid::new_v4().to_string();
        let staging = paths::upload_data(local, &id);
        let started = paths::upload_started_at(local, &id);
        driver
            .put_content(&started, Bytes::from(crate::registry::now_rfc3339()))
            .await?;
        let upstream = self.upstream(t).name.clone();
        let corrupt = |why: String| MirrorError::Corrupt {
            upstream: upstream.clone(),
            what: format!("blob {digest}"),
            why,
        };
        let mut writer = driver.writer(&staging, false).await?;
        let mut hasher = Digester::new(digest.algorithm());
        let mut size = 0u64;
        let mut held: Option<Bytes> = None;
        let outcome: Result<(), MirrorError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| MirrorError::Unavailable {
                    upstream: upstream.clone(),
                    why: format!("reading blob {digest}: {e}"),
                })?;
                size += chunk.len() as u64;
                if let Some(l) = len
                    && size > l
                {
                    return Err(corrupt(format!("more than the {l} bytes announced")));
                }
                hasher.update(&chunk);
                self.inner.metrics.upstream_bytes.inc_by(chunk.len() as u64);
                writer.write(chunk.clone()).await?;
                if let Some(prev) = held.replace(chunk)
                    && let Some(c) = &client
                    && c.send(Ok(prev)).await.is_err()
                {
                    // The client went away: keep storing for the others.
                    client = None;
                }
            }
            if let Some(l) = len
                && size != l
            {
                return Err(corrupt(format!("{size} bytes instead of {l}")));
            }
            Ok(())
        }
        .await;
        let verified = outcome.and_then(|()| {
            let got = hasher.finish();
            if &got == digest {
                Ok(())
            } else {
                Err(corrupt(format!("the bytes hash to {got}")))
            }
        });
        let committed = match verified {
            Ok(()) => {
                async {
                    writer.commit().await?;
                    if registry.stat_global_blob(digest).await?.is_none() {
                        driver.rename(&staging, &paths::blob_data(digest)).await?;
                    }
                    registry.link_blob(local, digest).await?;
                    Ok::<(), MirrorError>(())
                }
                .await
            }
            Err(e) => {
                let _ = writer.cancel().await;
                Err(e)
            }
        };
        let dir = paths::upload_dir(local, &id);
        if let Err(e) = driver.delete(&dir).await
            && !e.is_not_found()
        {
            tracing::warn!(path = %dir, error = %e, "cannot remove mirror staging");
        }
        if let Some(c) = client {
            let last = match &committed {
                Ok(()) => held.map(Ok),
                Err(e) => Some(Err(io::Error::other(e.to_string()))),
            };
            if let Some(item) = last {
                let _ = c.send(item).await;
            }
        }
        if committed.is_ok() {
            tracing::info!(upstream = %upstream, repository = %local, %digest, bytes = size, "blob fetched upstream and verified");
        }
        committed
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
