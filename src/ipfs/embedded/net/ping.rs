//! `/ipfs/ping/1.0.0`, answering side: every ping a peer sends is echoed,
//! whatever became of our own pings to it.
//!
//! libp2p's ping behaviour stops answering on a connection once its own
//! ping there was refused; a js-libp2p node without the ping service
//! refuses ours but still pings us (its connection monitor), and closes
//! the connection when we fall silent. disco only answers: it needs no
//! round-trip times, and a dead connection shows up as failing streams.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::StreamProtocol;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::streams::Incoming;

/// The protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");
/// Size of a ping payload.
const SIZE: usize = 32;
/// Ping streams served at once (all peers together); more wait.
const MAX_STREAMS: usize = 1024;
/// A ping stream silent this long is closed (peers ping every 10-15 s).
const IDLE: Duration = Duration::from_secs(120);

/// Answers the ping streams arriving on `incoming`.
pub(crate) async fn serve(mut incoming: mpsc::Receiver<Incoming>) {
    let limit = Arc::new(Semaphore::new(MAX_STREAMS));
    let mut tasks = JoinSet::new();
    while let Some((peer, mut stream, _)) = incoming.next().await {
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        // Pings must not keep an otherwise idle connection open.
        stream.ignore_for_keep_alive();
        tasks.spawn(async move {
            let mut buf = [0u8; SIZE];
            loop {
                match tokio::time::timeout(IDLE, stream.read_exact(&mut buf)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
            tracing::trace!(%peer, "ping stream ended");
            let _ = stream.close().await;
            drop(permit);
        });
    }
}
