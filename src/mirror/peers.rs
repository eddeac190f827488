//! `/disco/image-cid/1.0.0`: asking connected peers for the CID an image
//! is published under, by its manifest digest. A mirror that resolved a
//! tag upstream asks before fetching the image there; a peer that has it
//! answers its CID and the image is cloned by CID (every byte verified).
//!
//! The request is one line, the digest (`sha256:<hex>`); the answer one
//! line, the CID, or empty when the peer has no such image.

use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::stream::FuturesUnordered;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::Semaphore;

use crate::disco::Disco;
use crate::disco::json::parse_digest_text;
use crate::disco::names::parse_cid_v1;
use crate::registry::Digest;

/// The protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/disco/image-cid/1.0.0");
/// Longest line read (a sha512 digest or a CID fits).
const MAX_LINE: usize = 256;
/// Requests answered at once; more are dropped (the asker falls back).
const MAX_SERVING: usize = 64;
/// One exchange may take this long.
const EXCHANGE: Duration = Duration::from_secs(5);

/// Answers other nodes' questions from the images published or cloned
/// here, in the background.
pub fn serve(disco: Disco, mut control: libp2p_stream::Control) {
    let mut incoming = match control.accept(PROTOCOL) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "cannot serve /disco/image-cid/1.0.0");
            return;
        }
    };
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_SERVING));
        while let Some((peer, mut stream)) = incoming.next().await {
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            let disco = disco.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let r = tokio::time::timeout(EXCHANGE, async {
                    let line = read_line(&mut stream).await?;
                    let cid = match parse_digest_text(line.trim()) {
                        Some(d) => match disco.image_info(&d).await {
                            Ok(Some((cid, _))) => cid,
                            _ => String::new(),
                        },
                        None => String::new(),
                    };
                    tracing::debug!(%peer, digest = line.trim(), %cid, "image CID asked");
                    stream.write_all(format!("{cid}\n").as_bytes()).await?;
                    stream.close().await
                })
                .await;
                if let Ok(Err(e)) = r {
                    tracing::debug!(%peer, error = %e, "image CID request failed");
                }
            });
        }
    });
}

async fn read_line(s: &mut libp2p::swarm::Stream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if s.read(&mut byte).await? == 0 || byte[0] == b'\n' {
            break;
        }
        buf.push(byte[0]);
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::other("line too long"));
        }
    }
    String::from_utf8(buf).map_err(std::io::Error::other)
}

async fn ask_one(mut control: libp2p_stream::Control, peer: PeerId, digest: String) -> Option<Cid> {
    let r = tokio::time::timeout(EXCHANGE, async {
        let mut s = control.open_stream(peer, PROTOCOL).await.ok()?;
        s.write_all(format!("{digest}\n").as_bytes()).await.ok()?;
        s.flush().await.ok()?;
        let line = read_line(&mut s).await.ok()?;
        let _ = s.close().await;
        parse_cid_v1(line.trim())
    })
    .await;
    r.ok().flatten()
}

/// Asks `peers` at once for the CID of image `digest`; the first CID
/// answered within `within`, with the peer that answered it.
pub async fn ask(
    control: &libp2p_stream::Control,
    peers: Vec<PeerId>,
    digest: &Digest,
    within: Duration,
) -> Option<(PeerId, Cid)> {
    let mut asks: FuturesUnordered<_> = peers
        .into_iter()
        .map(|p| {
            let c = control.clone();
            let d = digest.to_string();
            async move { ask_one(c, p, d).await.map(|cid| (p, cid)) }
        })
        .collect();
    tokio::time::timeout(within, async {
        while let Some(r) = asks.next().await {
            if r.is_some() {
                return r;
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
