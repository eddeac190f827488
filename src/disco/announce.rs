//! Announcing the images this registry stores, so that pulls by CID find
//! it after a restart: at start (in the background, never delaying
//! readiness) and every `storage.ipfs.embedded.reprovideinterval`, every
//! image repository `repositories/<cid>` is listed with the blobs of its
//! `disco.json`, and the image CIDs and blob CIDs — the roots a puller
//! looks up, not every block — are handed to the embedded node's
//! announcer, which sends them to their closest DHT peers in batches (see
//! `crate::ipfs::embedded::net::announce`). Pushes and clones announce
//! their own image at once ([`Disco::provide`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cid::Cid;
use futures::{StreamExt, stream};

use super::Disco;
use super::json::DiscoJson;
use super::layout::DISCO_JSON;
use super::names::{self, NameKind};
use crate::registry::{RepoName, paths};

/// `disco.json` files read at once while scanning.
const SCAN_CONCURRENCY: usize = 16;

impl Disco {
    /// The CIDs to announce: every image repository held here and its
    /// blobs (deduplicated).
    pub async fn stored_roots(&self) -> Vec<Cid> {
        let driver = &self.inner.driver;
        let names = match driver.list(paths::REPOSITORIES).await {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list repositories to announce");
                return Vec::new();
            }
        };
        let images: Vec<(Cid, String)> = names
            .iter()
            .filter_map(|path| {
                let base = path.rsplit('/').next()?;
                let name = RepoName::parse(base).ok()?;
                match names::classify(&name) {
                    NameKind::Cid {
                        cid,
                        canonical: true,
                    } => Some((cid, format!("{path}/{DISCO_JSON}"))),
                    _ => None,
                }
            })
            .collect();
        let lists: Vec<(Cid, Option<DiscoJson>)> = stream::iter(images)
            .map(|(cid, json)| async move {
                let list = match driver.get_content(&json).await {
                    Ok(b) => DiscoJson::parse(&b).ok(),
                    Err(_) => None,
                };
                (cid, list)
            })
            .buffer_unordered(SCAN_CONCURRENCY)
            .collect()
            .await;
        let mut out = BTreeSet::new();
        for (cid, list) in lists {
            // A repository without a valid disco.json is not a whole image.
            let Some(list) = list else { continue };
            out.insert(cid);
            out.extend(list.blobs.iter().map(|b| b.cid));
        }
        out.into_iter().collect()
    }

    /// Announces everything stored now and then every `every` (zero: only
    /// now), in a background task. Does nothing without the embedded
    /// node's networking.
    pub fn start_announcing(&self, every: Duration) {
        let Some(net) = self.inner.network.clone() else {
            return;
        };
        let disco = self.clone();
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let roots = disco.stored_roots().await;
                tracing::info!(
                    cids = roots.len(),
                    scan_ms = started.elapsed().as_millis() as u64,
                    "announcing stored images to the IPFS network"
                );
                if net.announce_all(&roots).await.is_err() {
                    return;
                }
                if every.is_zero() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}
