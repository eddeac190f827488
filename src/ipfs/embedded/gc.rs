//! Mark and sweep garbage collection. Roots: the MFS root (flushed first)
//! and the pins. No lock is held across the sweep: blocks put or touched
//! while a collection runs, and those of operations in flight when it
//! started, are kept (see the blockstore's GC support).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cid::Cid;

use super::blockstore::{FlatFs, Key};
use super::mfs::Mfs;
use super::pins::Pins;
use crate::ipfs::block::IDENTITY;
use crate::ipfs::unixfs::dagpb::links_of;
use crate::ipfs::{DAG_PB, Result};

/// What a collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blocks reachable from the roots.
    pub marked: u64,
    /// Blocks deleted.
    pub removed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Wall time.
    pub duration: Duration,
}

fn mark(store: &FlatFs, root: Cid, keep: &mut HashSet<Key>, recursive: bool) {
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if cid.hash().code() == IDENTITY || !keep.insert(*cid.hash()) {
            continue;
        }
        if !recursive || cid.codec() != DAG_PB {
            continue;
        }
        match store.get_sync(&cid) {
            Ok(Some(block)) => match links_of(&cid, &block) {
                Ok(links) => stack.extend(links),
                Err(e) => tracing::warn!(%cid, "gc: undecodable dag-pb block: {e}"),
            },
            Ok(None) => tracing::debug!(%cid, "gc: reachable block not stored"),
            Err(e) => tracing::warn!(%cid, "gc: cannot read block: {e}"),
        }
    }
}

/// Runs one collection (blocking).
pub(crate) fn collect(mfs: &Mfs, pins: &Pins, store: &FlatFs) -> Result<GcStats> {
    let start = Instant::now();
    store.gc_begin();
    let result = (|| {
        let root = mfs.flush()?;
        let mut keep = HashSet::new();
        mark(store, root, &mut keep, true);
        for (cid, recursive) in pins.list() {
            mark(store, cid, &mut keep, recursive);
        }
        let (removed, freed_bytes) = store.sweep(&keep)?;
        Ok(GcStats {
            marked: keep.len() as u64,
            removed,
            freed_bytes,
            duration: start.elapsed(),
        })
    })();
    store.gc_end();
    if let Ok(s) = &result {
        tracing::info!(
            marked = s.marked,
            removed = s.removed,
            freed = s.freed_bytes,
            "garbage collection done"
        );
    }
    result
}
