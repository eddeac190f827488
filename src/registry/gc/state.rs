//! What the registry records for garbage collection while serving: digests
//! linked recently (the grace period in memory, for storage without
//! modification times), digests linked while a collection runs (its extra
//! marks), and the fence that orders pushes against deletions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::registry::Digest;

/// Entries of the recent-link map above which old entries are pruned.
const PRUNE_AT: usize = 1 << 16;

/// Shared GC bookkeeping of one registry.
pub struct GcState {
    /// When this process started: content of unknown age is this old.
    pub(crate) started: SystemTime,
    /// The grace period.
    grace: Mutex<Duration>,
    /// A collection is between its start and the end of its sweep.
    active: AtomicBool,
    /// Digests linked or pushed since the running collection started.
    recorded: Mutex<HashSet<Digest>>,
    /// When each digest was last linked or pushed by this process.
    recent: Mutex<HashMap<Digest, Instant>>,
    /// Pushes hold it shared from their reference checks to their last
    /// link; a collection takes it exclusively to start and for each
    /// deletion (after re-checking the candidate).
    pub(crate) fence: tokio::sync::RwLock<()>,
    /// One collection at a time.
    pub(crate) running: tokio::sync::Mutex<()>,
}

impl Default for GcState {
    fn default() -> Self {
        Self {
            started: SystemTime::now(),
            grace: Mutex::new(Duration::from_secs(3600)),
            active: AtomicBool::new(false),
            recorded: Mutex::new(HashSet::new()),
            recent: Mutex::new(HashMap::new()),
            fence: tokio::sync::RwLock::new(()),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

impl GcState {
    /// Sets the grace period.
    pub fn set_grace(&self, grace: Duration) {
        *self.grace.lock() = grace;
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        *self.grace.lock()
    }

    /// Notes that `digests` were linked or pushed now.
    pub fn record<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) {
        let now = Instant::now();
        let active = self.active.load(Ordering::Acquire);
        let mut recent = self.recent.lock();
        let mut recorded = active.then(|| self.recorded.lock());
        for d in digests {
            recent.insert(d.clone(), now);
            if let Some(r) = recorded.as_mut() {
                r.insert(d.clone());
            }
        }
        if recent.len() > PRUNE_AT {
            let grace = self.grace();
            recent.retain(|_, t| t.elapsed() < grace);
        }
    }

    /// True if `d` must not be deleted now: linked since the collection
    /// started, or within the grace period.
    pub fn protected(&self, d: &Digest) -> bool {
        if self.recorded.lock().contains(d) {
            return true;
        }
        let grace = self.grace();
        self.recent
            .lock()
            .get(d)
            .is_some_and(|t| t.elapsed() < grace)
    }

    /// Starts recording (call with the fence held exclusively).
    pub(crate) fn begin(&self) {
        self.recorded.lock().clear();
        self.active.store(true, Ordering::Release);
    }

    /// Stops recording.
    pub(crate) fn end(&self) {
        self.active.store(false, Ordering::Release);
        self.recorded.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_active_and_recent_within_grace() {
        let s = GcState::default();
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        s.set_grace(Duration::ZERO);
        s.record([&a]);
        assert!(!s.protected(&a), "no grace, no collection: not protected");
        s.begin();
        s.record([&b]);
        assert!(s.protected(&b), "linked during the collection");
        assert!(!s.protected(&a));
        s.end();
        assert!(!s.protected(&b));
        s.set_grace(Duration::from_secs(60));
        assert!(s.protected(&a), "linked within the grace period");
    }
}
