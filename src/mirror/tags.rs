//! When each mirrored tag was last resolved upstream (in memory: after a
//! restart every tag is asked again once).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Tags checked upstream at most this many are remembered; beyond, the
/// oldest half is forgotten (they are simply asked again).
const MAX_TAGS: usize = 100_000;

/// `(local name, tag)` → when the upstream last confirmed it.
#[derive(Default)]
pub struct TagCache {
    seen: Mutex<HashMap<(String, String), Instant>>,
}

impl TagCache {
    /// True if the tag was confirmed within `ttl`.
    pub fn fresh(&self, name: &str, tag: &str, ttl: Duration) -> bool {
        self.seen
            .lock()
            .get(&(name.to_string(), tag.to_string()))
            .is_some_and(|at| at.elapsed() < ttl)
    }

    /// Records that the upstream confirmed the tag now.
    pub fn confirm(&self, name: &str, tag: &str) {
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_TAGS {
            let mut ages: Vec<Instant> = seen.values().copied().collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            seen.retain(|_, at| *at > cut);
        }
        seen.insert((name.to_string(), tag.to_string()), Instant::now());
    }
}
