//! Striped per-path read/write locks: a replace (remove, then link) of a
//! path is never observed half-done by a reader of the same process.

use std::hash::{Hash, Hasher};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Number of stripes; paths share a lock when their hashes collide, which
/// only serialises them.
const STRIPES: usize = 256;

/// The lock table.
pub struct Locks {
    stripes: Vec<RwLock<()>>,
}

impl Locks {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
        }
    }

    fn stripe(path: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }

    /// Shared access to `path`.
    pub async fn read(&self, path: &str) -> RwLockReadGuard<'_, ()> {
        self.stripes[Self::stripe(path)].read().await
    }

    /// Exclusive access to all `paths`, taken in stripe order (no
    /// deadlock between two callers locking the same pair).
    pub async fn write(&self, paths: &[&str]) -> Vec<RwLockWriteGuard<'_, ()>> {
        let mut idx: Vec<usize> = paths.iter().map(|p| Self::stripe(p)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].write().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_path_excludes_and_pairs_do_not_deadlock() {
        let l = Locks::new();
        let w = l.write(&["/a", "/b", "/a"]).await;
        assert!(l.stripes[Locks::stripe("/a")].try_read().is_err());
        drop(w);
        let _r1 = l.read("/a").await;
        let _r2 = l.read("/a").await;
        assert!(l.stripes[Locks::stripe("/a")].try_write().is_err());
    }
}
