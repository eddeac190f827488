//! One connected peer: its outbox (our wants for it, its wants from us) and
//! the task that owns our long-lived outbound stream to it, batching our
//! wantlist changes and the blocks and presences we serve into messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use super::frame::write_frame;
use super::ledger::{Ledger, Request};
use super::message::{Block, Entry, MAX_MESSAGE_SIZE, Message, Presence, Version, WantType};
use super::prefix::Prefix;
use super::{Event, protocol};
use crate::ipfs::embedded::BlockStore;
use crate::ipfs::embedded::net::metrics::NetMetrics;

/// Blocks served per batch of store reads.
const SERVE_BLOCKS: usize = 8;
/// Presence requests answered per batch.
const SERVE_HAVES: usize = 1024;
/// Stop adding blocks to a message past this size.
const TARGET_MESSAGE: usize = 2 << 20;
/// Time allowed to open (negotiate) a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to write one message.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the peer task shares with the manager and the stream readers.
pub(crate) struct PeerShared {
    /// The remote peer.
    pub peer: PeerId,
    outbox: Mutex<Outbox>,
    notify: Notify,
    closed: AtomicBool,
    /// Negotiated protocol: 0 unknown, else 1 + `Version as u8`.
    version: AtomicU8,
}

#[derive(Default)]
struct Outbox {
    wants: HashMap<Cid, Entry>,
    ledger: Ledger,
}

impl PeerShared {
    /// A peer with an empty outbox.
    pub fn new(peer: PeerId) -> Self {
        PeerShared {
            peer,
            outbox: Mutex::new(Outbox::default()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            version: AtomicU8::new(0),
        }
    }

    /// Queues wantlist entries (a later entry for the same CID replaces an
    /// unsent earlier one).
    pub fn send_wants(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut ob = self.outbox.lock();
        for e in entries {
            ob.wants.insert(e.cid, e);
        }
        drop(ob);
        self.notify.notify_one();
    }

    /// Records what the peer asked us for.
    pub fn push_requests(&self, entries: &[Entry], full: bool) {
        self.outbox.lock().ledger.apply(entries, full);
        self.notify.notify_one();
    }

    /// Asks the task to flush and close the stream.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The negotiated protocol, once a stream is open.
    pub fn version(&self) -> Option<Version> {
        match self.version.load(Ordering::Relaxed) {
            1 => Some(Version::V100),
            2 => Some(Version::V110),
            3 => Some(Version::V120),
            _ => None,
        }
    }

    fn set_version(&self, v: Version) {
        let n = match v {
            Version::V100 => 1,
            Version::V110 => 2,
            Version::V120 => 3,
        };
        self.version.store(n, Ordering::Relaxed);
    }

    /// Unsent wants (tests).
    #[cfg(test)]
    pub fn take_wants(&self) -> Vec<Entry> {
        self.outbox.lock().wants.drain().map(|(_, e)| e).collect()
    }

    fn take_work(&self) -> (Vec<Entry>, Vec<Request>) {
        let mut ob = self.outbox.lock();
        let wants: Vec<Entry> = ob.wants.drain().map(|(_, e)| e).collect();
        let reqs = ob.ledger.take(SERVE_BLOCKS, SERVE_HAVES);
        (wants, reqs)
    }
}

/// What a peer task needs.
pub(crate) struct PeerCtx {
    pub store: Arc<dyn BlockStore>,
    pub control: libp2p_stream::Control,
    pub metrics: Arc<NetMetrics>,
    pub events: mpsc::Sender<Event>,
}

/// Runs until the peer is closed or its stream fails.
pub(crate) async fn run(shared: Arc<PeerShared>, ctx: Arc<PeerCtx>) {
    let mut stream: Option<(Stream, Version)> = None;
    loop {
        if shared.is_closed() {
            break;
        }
        let (mut wants, reqs) = shared.take_work();
        if wants.is_empty() && reqs.is_empty() {
            shared.notify.notified().await;
            continue;
        }
        // Wants first (they are small and unblock the peer's sending).
        wants.sort_by_key(|e| std::cmp::Reverse(e.priority));
        let mut messages = Vec::new();
        if !wants.is_empty() {
            messages.push(Message {
                wantlist: wants,
                ..Default::default()
            });
        }
        messages.extend(serve(&ctx, &reqs).await);
        for msg in messages {
            let blocks = msg.blocks.len() as u64;
            let bytes: u64 = msg.blocks.iter().map(|b| b.data.len() as u64).sum();
            if let Err(e) = send(&shared, &ctx, &mut stream, &msg).await {
                tracing::debug!(peer = %shared.peer, error = %e, "bitswap: cannot send to peer");
                let unsupported = matches!(e, SendError::Unsupported);
                let _ = ctx
                    .events
                    .send(Event::PeerFailed {
                        peer: shared.peer,
                        unsupported,
                    })
                    .await;
                return;
            }
            ctx.metrics.blocks_sent.add(blocks);
            ctx.metrics.bytes_sent.add(bytes);
        }
    }
    if let Some((mut s, _)) = stream {
        // Flush what is in flight, then close our half.
        let _ = tokio::time::timeout(WRITE_TIMEOUT, s.close()).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("peer speaks no bitswap version we know")]
    Unsupported,
    #[error("{0}")]
    Io(String),
}

async fn open(shared: &PeerShared, ctx: &PeerCtx) -> Result<(Stream, Version), SendError> {
    let mut control = ctx.control.clone();
    let versions = match shared.version() {
        Some(v) => vec![v],
        None => vec![Version::V120, Version::V110, Version::V100],
    };
    for v in versions {
        match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(shared.peer, protocol(v)))
            .await
        {
            Ok(Ok(s)) => {
                shared.set_version(v);
                return Ok((s, v));
            }
            Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => continue,
            Ok(Err(e)) => return Err(SendError::Io(e.to_string())),
            Err(_) => return Err(SendError::Io("timed out opening stream".into())),
        }
    }
    Err(SendError::Unsupported)
}

/// Writes `msg`, opening the stream if needed and reopening it once if the
/// old one was closed by the peer.
async fn send(
    shared: &PeerShared,
    ctx: &PeerCtx,
    stream: &mut Option<(Stream, Version)>,
    msg: &Message,
) -> Result<(), SendError> {
    for attempt in 0..2 {
        if stream.is_none() {
            *stream = Some(open(shared, ctx).await?);
        }
        let Some((s, v)) = stream.as_mut() else {
            continue;
        };
        let bytes = msg.encode(*v);
        match tokio::time::timeout(WRITE_TIMEOUT, write_frame(s, &bytes)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if attempt == 0 => {
                tracing::debug!(peer = %shared.peer, error = %e, "bitswap: stream failed, reopening");
                *stream = None;
            }
            Ok(Err(e)) => return Err(SendError::Io(e.to_string())),
            Err(_) => return Err(SendError::Io("timed out writing".into())),
        }
    }
    Err(SendError::Io("stream failed twice".into()))
}

/// Answers requests from the store, in messages below the size limits.
async fn serve(ctx: &PeerCtx, reqs: &[Request]) -> Vec<Message> {
    let lookups = reqs.iter().map(|r| async move {
        match r.want_type {
            WantType::Block => match ctx.store.get(&r.cid).await {
                Ok(Some(data)) => Answer::Block(data),
                Ok(None) => Answer::Missing,
                Err(e) => {
                    tracing::warn!(cid = %r.cid, error = %e, "bitswap: store read failed");
                    Answer::Missing
                }
            },
            WantType::Have => match ctx.store.has(&r.cid).await {
                Ok(true) => Answer::Have,
                _ => Answer::Missing,
            },
        }
    });
    let answers = futures::future::join_all(lookups).await;
    let mut out = Vec::new();
    let mut cur = Message::default();
    let mut size = 0usize;
    for (r, a) in reqs.iter().zip(answers) {
        match a {
            Answer::Block(data) => {
                if data.len() + 1024 > MAX_MESSAGE_SIZE {
                    tracing::warn!(cid = %r.cid, size = data.len(), "bitswap: block too large to send");
                    continue;
                }
                if size + data.len() > TARGET_MESSAGE && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    size = 0;
                }
                size += data.len() + 64;
                cur.blocks.push(Block {
                    prefix: Prefix::of(&r.cid),
                    data,
                });
            }
            Answer::Have => {
                size += 64;
                cur.presences.push((r.cid, Presence::Have));
            }
            Answer::Missing if r.send_dont_have => {
                size += 64;
                cur.presences.push((r.cid, Presence::DontHave));
            }
            Answer::Missing => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

enum Answer {
    Block(Bytes),
    Have,
    Missing,
}
