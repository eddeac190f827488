//! Bootstrap that heals: the configured peers are dialled at start and,
//! for as long as the node has no peer at all, again with capped
//! exponential backoff ([`FIRST_RETRY`] doubling to [`MAX_RETRY`]); when
//! the last connection closes the cycle starts over. Each new connection
//! while the DHT has not been refreshed recently starts a DHT bootstrap
//! (lookups that fill the routing table), and the DHT refreshes itself
//! every [`REFRESH`] besides.

use std::time::{Duration, Instant, SystemTime};

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

/// Wait before the first retry.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// Regular DHT refresh (a bootstrap of the routing table).
pub const REFRESH: Duration = Duration::from_secs(300);
/// A new connection refreshes the DHT at most this often.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);

/// What `GET /disco/v1/node` and `disco peers` show.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapStatus {
    /// `idle` (no bootstrap peers configured), `connecting`, `retrying`
    /// (no peer; next dial scheduled) or `connected`.
    pub state: String,
    /// Configured bootstrap peers.
    pub configured: usize,
    /// Configured bootstrap peers connected now.
    pub connected: usize,
    /// Connected peers (any).
    pub peers: usize,
    /// Peers in the DHT routing table.
    pub routing_table: usize,
    /// Dials of bootstrap peers so far (first ones and retries).
    pub attempts: u64,
    /// Milliseconds until the next retry, while retrying.
    pub next_retry_ms: Option<u64>,
    /// The last dial error, if the last attempt failed.
    pub last_error: Option<String>,
    /// DHT refreshes (bootstraps) completed.
    pub refreshes: u64,
    /// When the last DHT refresh completed (Unix milliseconds).
    pub last_refresh: Option<u64>,
}

/// The swarm task's bootstrap state.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    pub peers: Vec<Multiaddr>,
    pub ids: Vec<PeerId>,
    pub backoff: Duration,
    pub next: Option<tokio::time::Instant>,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub refreshes: u64,
    pub last_refresh: Option<SystemTime>,
    pub last_refresh_start: Option<Instant>,
}

impl Bootstrap {
    /// State for the configured peers.
    pub fn new(peers: Vec<Multiaddr>) -> Self {
        let ids = peers
            .iter()
            .filter_map(|a| super::swarm::split_peer(a).1)
            .collect();
        Bootstrap {
            peers,
            ids,
            backoff: FIRST_RETRY,
            next: None,
            attempts: 0,
            last_error: None,
            refreshes: 0,
            last_refresh: None,
            last_refresh_start: None,
        }
    }

    /// Schedules the next retry and grows the backoff.
    pub fn schedule(&mut self) {
        if self.peers.is_empty() {
            return;
        }
        self.next = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }

    /// A connection is up: no retry needed.
    pub fn connected(&mut self) {
        self.next = None;
        self.backoff = FIRST_RETRY;
        self.last_error = None;
    }

    /// The last connection closed: start over.
    pub fn lost_all(&mut self) {
        self.backoff = FIRST_RETRY;
        self.schedule();
    }

    /// Whether a connection should start a DHT refresh now.
    pub fn refresh_due(&self) -> bool {
        self.last_refresh_start
            .is_none_or(|t| t.elapsed() >= MIN_REFRESH_GAP)
    }

    /// The snapshot shown to users.
    pub fn status(&self, connected: &[PeerId], peers: usize, table: usize) -> BootstrapStatus {
        let up = self.ids.iter().filter(|p| connected.contains(p)).count();
        let state = if self.peers.is_empty() {
            "idle"
        } else if peers > 0 {
            "connected"
        } else if self.attempts > 1 || self.last_error.is_some() {
            "retrying"
        } else {
            "connecting"
        };
        BootstrapStatus {
            state: state.into(),
            configured: self.peers.len(),
            connected: up,
            peers,
            routing_table: table,
            attempts: self.attempts,
            next_retry_ms: self.next.map(|t| {
                t.saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64
            }),
            last_error: self.last_error.clone(),
            refreshes: self.refreshes,
            last_refresh: self.last_refresh.and_then(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Bootstrap::new(vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]);
        let mut waits = Vec::new();
        for _ in 0..9 {
            waits.push(b.backoff.as_secs());
            b.schedule();
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.connected();
        assert!(b.next.is_none());
        b.lost_all();
        assert!(b.next.is_some());
        assert_eq!(b.backoff, Duration::from_secs(2));
        let mut none = Bootstrap::new(Vec::new());
        none.schedule();
        assert!(none.next.is_none());
        assert_eq!(none.status(&[], 0, 0).state, "idle");
    }
}
