//! `gc`: online garbage collection of registry content and retention
//! policies (see `crate::registry::gc`).

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `gc`: online registry garbage collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GcConfig {
    /// How often the scheduled collection runs; `0` turns the schedule off
    /// (collections then run only on demand). The first run comes one
    /// interval after start. Default `24h`.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Content younger than this is never collected: blobs and manifests
    /// written, and blobs linked into a repository, less than `grace` ago
    /// (a client pushes its blobs before the manifest that references
    /// them). Where the storage keeps no modification times (IPFS), disco
    /// counts from the links it saw written and, for older content, from
    /// its own start. Default `1h`.
    #[serde(deserialize_with = "duration")]
    pub grace: Duration,
    /// Scheduled collections also delete manifests no tag points at (as
    /// Distribution's `garbage-collect --delete-untagged`), except index
    /// children and referrers of kept manifests. Default false.
    pub deleteuntagged: bool,
    /// Scheduled collections only report what they would delete. Default
    /// false.
    pub dryrun: bool,
    /// Keep every content-addressed repository (digest and CID names),
    /// even when no named repository holds its image any more. disco cannot
    /// tell a clone from a published image whose named repositories were
    /// deleted; by default both are collected (after `grace`), and a later
    /// pull by CID clones the image again from the network. Default false.
    pub keepclones: bool,
    /// Retention policies, by repository glob; the first policy matching
    /// a repository applies. Default none.
    pub retention: Vec<RetentionPolicy>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            grace: Duration::from_secs(3600),
            deleteuntagged: false,
            dryrun: false,
            keepclones: false,
            retention: Vec::new(),
        }
    }
}

/// One entry of `gc.retention`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Repository globs: `*` matches within one path component, `**`
    /// across components, `?` one character. Default none (matches
    /// nothing).
    pub repositories: Vec<String>,
    /// Keep only the newest N tags (by push time, where the storage keeps
    /// one; tags of unknown age count as newest); older tags are deleted.
    /// Default unset: keep all.
    pub keeptags: Option<usize>,
    /// Tags matching any of these globs are always kept and not counted
    /// in `keeptags`. Default none.
    pub keeppatterns: Vec<String>,
    /// Delete untagged manifests older than this (also without
    /// `deleteuntagged`). Default unset.
    #[serde(default, deserialize_with = "opt_duration")]
    pub untaggedage: Option<Duration>,
    /// Only report what this policy would delete. Default false.
    pub dryrun: bool,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}
