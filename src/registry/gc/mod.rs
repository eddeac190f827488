//! Online garbage collection of registry content, with retention policies,
//! joined with the IPFS block collection.
//!
//! A collection runs while the registry serves pushes and pulls:
//!
//! 1. **Start.** It takes the push fence ([`state::GcState`]) exclusively
//!    for a moment, so every push that checked its references before is
//!    finished (and visible in storage), and starts recording: from now on
//!    every digest a push links (blob uploads, mounts, manifest puts with
//!    all they reference, tags) is added to the collection's marks.
//! 2. **Inventory** ([`scan`]): one walk of the repositories (tags,
//!    revisions, layer links and their modification times) and of the blob
//!    store.
//! 3. **Mark** ([`mark`]): from the tags (after [`retention`]), every
//!    revision unless untagged ones are collected, index children and
//!    referrers of kept manifests, and the content-addressed repositories
//!    whose image a named repository keeps (`gc.keepclones` keeps them
//!    all).
//! 4. **Grace.** Unreferenced content younger than `gc.grace` stays: blobs
//!    written or linked into any repository, and manifests, less than
//!    `grace` ago — a client uploads its blobs before the manifest that
//!    references them. Ages come from storage modification times, from
//!    the links this process saw written, and, on storage without times
//!    (IPFS), count from the process start.
//! 5. **Sweep** ([`sweep`]): tags, untagged manifests, content-addressed
//!    repositories, then blobs. Each deletion takes the fence exclusively
//!    and re-checks its candidate against the recorded marks and the
//!    grace: a push either finished its reference check before (and
//!    recorded what it references, which stays) or starts after (and its
//!    reference check fails with `MANIFEST_BLOB_UNKNOWN`, a clean error the
//!    client retries). Blobs are left to the next run if a clone ran during
//!    the collection (its blobs land before its repository).
//! 6. **Blocks.** With the embedded IPFS node, a block collection follows,
//!    so the space of the deleted files comes back; on Kubo the files are
//!    removed from MFS (Kubo's own GC frees the blocks); on S3 and the
//!    filesystem the deletion frees the space.
//!
//! A crash (kill -9) at any point loses nothing referenced: the mark
//! phase only reads, and the sweep only removes what is unreferenced, in
//! an order where each step removes references to what later steps
//! delete; the next run finishes the job. A read-only registry refuses
//! collections.

pub mod mark;
pub mod metrics;
pub mod report;
pub mod retention;
pub mod scan;
pub mod state;
pub mod sweep;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;

use self::mark::{ManifestInfo, MarkInput};
pub use self::metrics::GcMetrics;
pub use self::report::GcReport;
use crate::config::GcConfig;
use crate::registry::{Digest, ErrorCode, Registry, RegistryError};

/// Manifests loaded at once by the mark phase.
const LOAD_CONCURRENCY: usize = 16;

/// Why a collection did not run.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// `storage.maintenance.readonly.enabled`.
    #[error(
        "the registry is in read-only mode (storage.maintenance.readonly.enabled): garbage collection deletes content and is refused"
    )]
    ReadOnly,
    /// No block store to collect.
    #[error("{0}")]
    NoBlocks(&'static str),
    /// Storage failed.
    #[error("registry garbage collection failed: {0}")]
    Registry(#[from] RegistryError),
    /// The block collection failed.
    #[error("block garbage collection failed: {0}")]
    Blocks(String),
}

impl GcError {
    /// The OCI error a client gets.
    pub fn response(&self) -> RegistryError {
        match self {
            GcError::ReadOnly | GcError::NoBlocks(_) => {
                RegistryError::unsupported(self.to_string())
            }
            e => RegistryError::internal(e.to_string()),
        }
    }
}

/// What a collection is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcRequest {
    /// Delete untagged manifests too.
    pub delete_untagged: bool,
    /// Report only.
    pub dry_run: bool,
}

/// The block store behind the registry, collected after it.
#[async_trait]
pub trait BlockCollector: Send + Sync + 'static {
    /// Runs a block collection; returns its statistics as JSON.
    async fn collect_blocks(&self) -> Result<serde_json::Value, String>;
}

#[async_trait]
impl BlockCollector for crate::ipfs::embedded::EmbeddedIpfs {
    async fn collect_blocks(&self) -> Result<serde_json::Value, String> {
        self.gc()
            .await
            .map(|s| crate::disco::http::gc_stats_json(&s))
            .map_err(|e| e.to_string())
    }
}

/// Clones in progress (their blobs are stored before their repository).
pub trait CloneWatch: Send + Sync + 'static {
    /// Clones started so far, and clones running now.
    fn clone_epoch(&self) -> (u64, i64);
}

impl CloneWatch for crate::disco::Disco {
    fn clone_epoch(&self) -> (u64, i64) {
        let m = self.metrics();
        (m.clones_started.get(), m.clones_in_flight.get())
    }
}

/// Runs collections of one registry (one at a time).
pub struct Collector {
    registry: Arc<Registry>,
    config: GcConfig,
    content_addressed: bool,
    keep_content_addressed: bool,
    blocks: Option<Arc<dyn BlockCollector>>,
    clones: Option<Arc<dyn CloneWatch>>,
    metrics: GcMetrics,
}

impl Collector {
    /// A collector of `registry`. `content_addressed` is true when disco
    /// publishes images under digest and CID names; `keep_content_addressed`
    /// keeps those repositories whatever holds them.
    pub fn new(
        registry: Arc<Registry>,
        config: GcConfig,
        content_addressed: bool,
        keep_content_addressed: bool,
    ) -> Self {
        registry.gc_state().set_grace(config.grace);
        Self {
            registry,
            config,
            content_addressed,
            keep_content_addressed,
            blocks: None,
            clones: None,
            metrics: GcMetrics::default(),
        }
    }

    /// Collects `blocks` after each collection that deleted something.
    pub fn with_blocks(mut self, blocks: Arc<dyn BlockCollector>) -> Self {
        self.blocks = Some(blocks);
        self
    }

    /// Leaves blobs alone while clones run.
    pub fn with_clones(mut self, clones: Arc<dyn CloneWatch>) -> Self {
        self.clones = Some(clones);
        self
    }

    /// The metrics.
    pub fn metrics(&self) -> &GcMetrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &GcConfig {
        &self.config
    }

    fn check_writable(&self) -> Result<(), GcError> {
        if self.registry.options().readonly {
            self.metrics.failures.inc();
            return Err(GcError::ReadOnly);
        }
        Ok(())
    }

    /// A block collection alone (`POST /disco/v1/gc`).
    pub async fn collect_blocks(&self) -> Result<serde_json::Value, GcError> {
        self.check_writable()?;
        let Some(b) = &self.blocks else {
            return Err(GcError::NoBlocks(
                "there is no embedded IPFS block store to collect; ask for a registry collection (registry=true)",
            ));
        };
        b.collect_blocks().await.map_err(GcError::Blocks)
    }

    /// Runs one registry collection (then the block collection).
    pub async fn run(&self, req: GcRequest) -> Result<GcReport, GcError> {
        self.check_writable()?;
        let _one = self.registry.gc.running.lock().await;
        self.metrics.running.inc();
        let result = self.run_locked(req).await;
        self.metrics.running.dec();
        match &result {
            Ok(r) => {
                self.metrics.runs.inc();
                self.metrics.last_duration_ms.set(r.duration_ms as i64);
                if !r.dry_run {
                    self.metrics.blobs_deleted.inc_by(r.blobs.len() as u64);
                    self.metrics.bytes_freed.inc_by(r.bytes_freed);
                    self.metrics
                        .manifests_deleted
                        .inc_by(r.manifests.len() as u64);
                    self.metrics.tags_deleted.inc_by(r.tags.len() as u64);
                    self.metrics
                        .repositories_deleted
                        .inc_by(r.repositories.len() as u64);
                }
                tracing::info!(
                    dry_run = r.dry_run,
                    blobs = r.blobs.len(),
                    bytes = r.bytes_freed,
                    manifests = r.manifests.len(),
                    tags = r.tags.len(),
                    repositories = r.repositories.len(),
                    "registry garbage collection done"
                );
            }
            Err(e) => {
                self.metrics.failures.inc();
                tracing::error!(error = %e, "registry garbage collection failed");
            }
        }
        result
    }

    async fn run_locked(&self, req: GcRequest) -> Result<GcReport, GcError> {
        let start = Instant::now();
        let reg = &self.registry;
        let state = reg.gc_state();
        let clones_before = self.clones.as_ref().map(|c| c.clone_epoch());
        {
            let _w = state.fence.write().await;
            state.begin();
        }
        let result = async {
            let inv = reg.gc_inventory().await?;
            let manifests = self.load_manifests(&inv).await?;
            let recent = |d: &Digest| state.protected(d);
            let input = MarkInput {
                manifests: &manifests,
                delete_untagged: req.delete_untagged,
                policies: &self.config.retention,
                content_addressed: self.content_addressed,
                keep_content_addressed: self.keep_content_addressed,
                grace: state.grace(),
                now: SystemTime::now(),
                started: state.started,
                recent: &recent,
            };
            let plan = mark::plan(&inv, &input);
            if req.dry_run {
                return Ok::<_, GcError>(GcReport::planned(&plan));
            }
            let clones_after = self.clones.as_ref().map(|c| c.clone_epoch());
            let blobs_allowed = match (clones_before, clones_after) {
                (Some((s0, r0)), Some((s1, r1))) => s0 == s1 && r0 == 0 && r1 == 0,
                _ => true,
            };
            let swept = reg.gc_sweep(&plan, blobs_allowed).await;
            Ok(GcReport::swept(&plan, &swept))
        }
        .await;
        state.end();
        let mut report = result?;
        report.delete_untagged = req.delete_untagged;
        let deleted = !report.blobs.is_empty()
            || !report.manifests.is_empty()
            || !report.repositories.is_empty();
        if !report.dry_run
            && deleted
            && let Some(b) = &self.blocks
        {
            report.blocks = Some(b.collect_blocks().await.map_err(GcError::Blocks)?);
        }
        report.duration_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Loads the references of every revision and tag target.
    async fn load_manifests(
        &self,
        inv: &scan::Inventory,
    ) -> Result<HashMap<Digest, ManifestInfo>, GcError> {
        let mut wanted: HashSet<Digest> = HashSet::new();
        for repo in inv.repos.values() {
            wanted.extend(repo.revisions.keys().cloned());
            wanted.extend(repo.tags.values().map(|t| t.digest.clone()));
        }
        let reg = &self.registry;
        let loaded: Vec<Result<(Digest, Option<ManifestInfo>), RegistryError>> =
            futures::stream::iter(wanted)
                .map(|d| async move {
                    match reg.load_manifest(&d).await {
                        Ok(m) => {
                            let info = ManifestInfo::of(&m.bytes, &m.media_type);
                            Ok((d, Some(info)))
                        }
                        // A link to a manifest that is gone references
                        // nothing.
                        Err(e) if e.code == ErrorCode::ManifestUnknown => {
                            tracing::warn!(digest = %d, "gc: a link names a manifest that is not stored");
                            Ok((d, None))
                        }
                        // Anything else (storage down, corrupt bytes) stops
                        // the collection: what the manifest references
                        // cannot be marked.
                        Err(e) => Err(e),
                    }
                })
                .buffer_unordered(LOAD_CONCURRENCY)
                .collect()
                .await;
        let mut out = HashMap::new();
        for r in loaded {
            if let (d, Some(i)) = r? {
                out.insert(d, i);
            }
        }
        Ok(out)
    }

    /// Runs collections every `gc.interval` (first one interval after
    /// start), unless the interval is zero or the registry is read-only.
    pub fn spawn_schedule(self: Arc<Self>) {
        let interval = self.config.interval;
        if interval.is_zero() {
            return;
        }
        if self.registry.options().readonly {
            tracing::info!("scheduled garbage collection off: the registry is read-only");
            return;
        }
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let req = GcRequest {
                    delete_untagged: self.config.deleteuntagged,
                    dry_run: self.config.dryrun,
                };
                let _ = self.run(req).await;
            }
        });
    }
}
