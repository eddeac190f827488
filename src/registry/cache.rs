//! A bounded in-memory cache of manifest bytes by digest. Content is
//! immutable per digest, so entries never go stale; access control (is the
//! manifest linked in this repository?) is always checked in storage.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::digest::Digest;

/// A stored manifest as served.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The exact bytes pushed.
    pub bytes: Bytes,
}

struct Inner {
    map: HashMap<Digest, Arc<StoredManifest>>,
    order: VecDeque<Digest>,
    bytes: usize,
}

/// FIFO-evicting cache bounded by total bytes.
pub struct ManifestCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl ManifestCache {
    /// A cache holding up to `capacity` bytes of manifests.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            capacity,
        }
    }

    /// The cached manifest for `digest`.
    pub fn get(&self, digest: &Digest) -> Option<Arc<StoredManifest>> {
        self.inner.lock().map.get(digest).cloned()
    }

    /// Caches a manifest (ignored if larger than the whole cache).
    pub fn insert(&self, m: Arc<StoredManifest>) {
        let size = m.bytes.len();
        if size > self.capacity {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.map.contains_key(&m.digest) {
            return;
        }
        while inner.bytes + size > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(e) = inner.map.remove(&old) {
                inner.bytes -= e.bytes.len();
            }
        }
        inner.bytes += size;
        inner.order.push_back(m.digest.clone());
        inner.map.insert(m.digest.clone(), m);
    }

    /// Drops a manifest (after its blob is deleted).
    pub fn remove(&self, digest: &Digest) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.map.remove(digest) {
            inner.bytes -= e.bytes.len();
            inner.order.retain(|d| d != digest);
        }
    }
}
