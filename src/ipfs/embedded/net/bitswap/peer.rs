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
/// Tries to write one message (each on a new stream after the first).
const SEND_ATTEMPTS: u32 = 5;
/// Wait before the second try; doubled for each further one.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Our stream is closed after this long with nothing to send.
const STREAM_IDLE: Duration = Duration::from_secs(30);

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

/// Runs until the peer is closed (it disconnected, or it speaks no
/// bitswap). A message that cannot be written is retried on new streams
/// ([`SEND_ATTEMPTS`], with backoff); when every attempt fails the manager
/// moves our wants elsewhere, but the task goes on with the next message.
/// Our stream is closed after [`STREAM_IDLE`] without anything to send,
/// so a connection nobody uses can idle out.
pub(crate) async fn run(shared: Arc<PeerShared>, ctx: Arc<PeerCtx>) {
    let mut stream: Option<(Stream, Version)> = None;
    loop {
        if shared.is_closed() {
            break;
        }
        let (mut wants, reqs) = shared.take_work();
        if wants.is_empty() && reqs.is_empty() {
            let wait = shared.notify.notified();
            if tokio::time::timeout(STREAM_IDLE, wait).await.is_err()
                && let Some((mut s, _)) = stream.take()
            {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, s.close()).await;
            }
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
            match send(&shared, &ctx, &mut stream, &msg).await {
                Ok(()) => {
                    ctx.metrics.blocks_sent.add(blocks);
                    ctx.metrics.bytes_sent.add(bytes);
                }
                Err(e) => {
                    let unsupported = matches!(e, SendError::Unsupported);
                    if !unsupported {
                        ctx.metrics.sends_failed.inc();
                        tracing::warn!(peer = %shared.peer, error = %e, "bitswap: cannot send to peer");
                    }
                    let _ = ctx
                        .events
                        .send(Event::PeerFailed {
                            peer: shared.peer,
                            unsupported,
                        })
                        .await;
                    if unsupported {
                        return;
                    }
                }
            }
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

/// Writes `msg`, opening the stream if needed; a failed write or open is
/// retried on a new stream, up to [`SEND_ATTEMPTS`] times with backoff,
/// while the peer is connected.
async fn send(
    shared: &PeerShared,
    ctx: &PeerCtx,
    stream: &mut Option<(Stream, Version)>,
    msg: &Message,
) -> Result<(), SendError> {
    let mut last = String::new();
    for attempt in 0..SEND_ATTEMPTS {
        if attempt > 0 {
            if shared.is_closed() {
                break;
            }
            ctx.metrics.send_retries.inc();
            tokio::time::sleep(RETRY_BACKOFF * (1 << (attempt - 1).min(4))).await;
        }
        if stream.is_none() {
            match open(shared, ctx).await {
                Ok(s) => *stream = Some(s),
                Err(SendError::Unsupported) => return Err(SendError::Unsupported),
                Err(e) => {
                    tracing::debug!(peer = %shared.peer, error = %e, attempt, "bitswap: cannot open stream");
                    last = e.to_string();
                    continue;
                }
            }
        }
        let Some((s, v)) = stream.as_mut() else {
            continue;
        };
        let bytes = msg.encode(*v);
        match tokio::time::timeout(WRITE_TIMEOUT, write_frame(s, &bytes)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(peer = %shared.peer, error = %e, attempt, "bitswap: stream failed, reopening");
                last = e.to_string();
            }
            Err(_) => last = "timed out writing".into(),
        }
        *stream = None;
    }
    Err(SendError::Io(format!(
        "{SEND_ATTEMPTS} attempts failed, last: {last}"
    )))
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
