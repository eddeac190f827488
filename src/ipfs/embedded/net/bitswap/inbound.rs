//! Inbound bitswap streams (delivered by [`crate::ipfs::embedded::net::streams`]), read
//! message by message; each block's CID is recomputed from its bytes here
//! (in parallel across streams) before the manager sees it.

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use futures::io::BufReader;
use libp2p::{PeerId, Stream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Event;
use super::frame::read_frame;
use super::message::Message;
use crate::ipfs::embedded::net::streams::Incoming;

/// Most inbound streams read at once (all peers together).
const MAX_INBOUND_STREAMS: usize = 1024;

/// Reads the bitswap streams arriving on `incoming` (every version), at
/// most [`MAX_INBOUND_STREAMS`] at once: more wait for a free slot (they
/// queue on their connections), none is dropped.
pub(crate) async fn accept_loop(
    mut incoming: futures::channel::mpsc::Receiver<Incoming>,
    events: mpsc::Sender<Event>,
) {
    let limit = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
    let mut readers = JoinSet::new();
    while let Some((peer, stream, _)) = incoming.next().await {
        while readers.try_join_next().is_some() {}
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let events = events.clone();
        readers.spawn(async move {
            read_loop(peer, stream, events).await;
            drop(permit);
        });
    }
}

/// Messages of one stream being hashed at once (each at most 4 MiB).
const HASHING_PER_STREAM: usize = 4;

enum Job {
    Ready(Event),
    Hashing(tokio::task::JoinHandle<Event>),
}

/// Reads messages; blocks are hashed on the blocking pool, several messages
/// at a time, while events still reach the manager in stream order.
async fn read_loop(peer: PeerId, stream: Stream, events: mpsc::Sender<Event>) {
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(HASHING_PER_STREAM);
    let forward = async move {
        while let Some(job) = jobs_rx.recv().await {
            let ev = match job {
                Job::Ready(ev) => ev,
                Job::Hashing(h) => match h.await {
                    Ok(ev) => ev,
                    Err(_) => return,
                },
            };
            if events.send(ev).await.is_err() {
                return;
            }
        }
    };
    let read = async move {
        let mut r = BufReader::with_capacity(256 * 1024, stream);
        loop {
            let frame = match read_frame(&mut r).await {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bitswap: inbound stream ended");
                    return;
                }
            };
            let msg = match Message::decode(&frame) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bitswap: undecodable message, closing stream");
                    return;
                }
            };
            let job = if msg.blocks.is_empty() {
                Job::Ready(to_event(peer, msg))
            } else {
                Job::Hashing(tokio::task::spawn_blocking(move || to_event(peer, msg)))
            };
            if jobs_tx.send(job).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(read, forward);
}

/// Recomputes each block's CID from its prefix and bytes.
pub(crate) fn to_event(peer: PeerId, msg: Message) -> Event {
    let mut blocks: Vec<(Cid, Bytes)> = Vec::with_capacity(msg.blocks.len());
    let mut unverifiable = 0;
    for b in msg.blocks {
        match b.prefix.cid_of(&b.data) {
            Ok(cid) => blocks.push((cid, b.data)),
            Err(e) => {
                unverifiable += 1;
                tracing::debug!(%peer, error = %e, "bitswap: block with unusable CID prefix");
            }
        }
    }
    Event::Message {
        peer,
        wantlist: msg.wantlist,
        full: msg.full,
        blocks,
        presences: msg.presences,
        unverifiable,
    }
}
